"""Evaluation-set inputs of `--eval_images GLOB` (repeatable).

A glob may match: image folder trees (walked recursively for image files), image files,
webdataset shards (`.tar`, images are the members with an image extension) and TFRecords of
schemas/ (`.tfrecord`, `.tfrecord.gz`; `image/encoded` and `key`). Local paths and gs:// work.
Files are read with the project's one set of readers (schemas/tar_members, tfrecord_reader,
input_files) and checked with its one decoder (schemas/image_decode), as curation reads them.
Every eval image gets a key that says where it is, so audits can open it (`load_eval_image`):
  image file: its path;  tar member: "SHARD.tar#MEMBER";  TFRecord example: "FILE.tfrecord#KEY".

Configuration errors (no glob, a glob matching nothing, an empty file, a folder without images,
an unknown kind) raise `EvalInputError` when the pipeline is built. Bad *content* never fails the
job (issue #10): `read_eval_source` yields the good images as (eval_key, bytes) and each bad one as
an error record (`eval_error`, a dict {"eval_key", "file", "error", "detail"}):
  - an image that does not decode: its IMAGE_ERRORS name (`decompression_bomb`, `truncated_image`,
    `undecodable_image`, `not_an_image`, ...), key as above;
  - an image file that cannot be read: a PATH_ERRORS name of schemas/input_files, key = its path;
  - a TFRecord record whose CRC fails: `corrupt_record`, key "FILE.tfrecord@BYTE_OFFSET"; a record
    that is no Example or lacks `key`/`image/encoded`: `malformed_example` ("FILE#KEY" if it has
    a key, else "FILE@BYTE_OFFSET");
  - a damaged tar or TFRecord (cut short, bad header checksum, broken framing, corrupt gzip):
    the images before the damage, then ONE `unreadable_file` with key = file = its path;
  - a tar or TFRecord read to its end without any image: `no_images_in_file`, key = its path.
CAUTION: an unreadable eval image cannot be compared with the training set, so its near-duplicates
may stay in training. Errors are therefore counted and listed (FindNearDuplicatesOfEval.eval_errors,
stats.json) and logged loudly (`warn_unreadable_eval_images`), never skipped silently.
"""
import dataclasses
import glob as globlib
import gzip
import logging
import os
from typing import Iterator, List, Optional, Sequence, Tuple, Union

from schemas import input_files, tfrecord_reader
from schemas.example_wire import IMAGE_ENCODED, KEY
from schemas.image_decode import IMAGE_ERRORS, UNDECODABLE_IMAGE, ImageDecodeError, decode_rgb
from schemas.input_readers import CORRUPT_RECORD, MALFORMED_EXAMPLE, UNREADABLE_FILE
from schemas.tar_members import iter_tar_files, sanitize_text

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords", ".tfrecord.gz", ".tfrecords.gz")
IMAGE, TAR, TFRECORD = "image", "tar", "tfrecord"

NO_IMAGES_IN_FILE = "no_images_in_file"  # a tar/TFRecord read to its end without an eval image
EVAL_ERRORS = (IMAGE_ERRORS + input_files.PATH_ERRORS
               + (UNREADABLE_FILE, CORRUPT_RECORD, MALFORMED_EXAMPLE, NO_IMAGES_IN_FILE))
WARN_FIRST_KEYS = 5  # keys named in the warning; the full list is the caller's (eval_errors)

EvalItem = Union[Tuple[str, bytes], dict]  # a good image, or an eval_error record


class EvalInputError(ValueError):
    """A configuration error: an evaluation input is missing, empty or of an unknown kind."""


@dataclasses.dataclass(frozen=True)
class EvalSource:
    kind: str  # IMAGE, TAR or TFRECORD
    path: str


def eval_error(eval_key: str, file: str, error: str, detail: str = "") -> dict:
    """The record of one eval image (or file) that could not be used; `error` is in EVAL_ERRORS."""
    return {"eval_key": sanitize_text(eval_key), "file": sanitize_text(file), "error": error,
            "detail": sanitize_text(str(detail))[:500]}


def is_eval_error(item: EvalItem) -> bool:
    return isinstance(item, dict)


def warn_unreadable_eval_images(count: int, first_keys: Sequence[str]) -> None:
    """The loud warning: these eval images were not compared, their copies may leak into training."""
    if count:
        logging.warning(
            "dedup: %d EVAL IMAGE(S) COULD NOT BE READ and were NOT compared with the training set: "
            "their near-duplicates may remain in the training data. Fix or remove them. First: %s",
            count, ", ".join(first_keys[:WARN_FIRST_KEYS]))


def _kind_of(path: str) -> str:
    lower = path.lower()
    if lower.endswith(IMAGE_EXTENSIONS):
        return IMAGE
    if lower.endswith(".tar"):
        return TAR
    if lower.endswith(TFRECORD_SUFFIXES) or ".tfrecord-" in lower:
        return TFRECORD
    raise EvalInputError(f"eval input {path!r}: unknown kind (expected an image folder, an image "
                         f"{IMAGE_EXTENSIONS}, a webdataset .tar or a TFRecord .tfrecord[.gz])")


def _match(pattern: str) -> List[str]:
    if input_files.scheme_of(pattern) is not None:
        return input_files.match_files(pattern)
    return sorted(globlib.glob(os.path.expanduser(pattern), recursive=True))  # folders too


def _walk_images(folder: str) -> List[str]:
    found = []
    for root, _, names in os.walk(folder):
        found += [os.path.join(root, n) for n in names if n.lower().endswith(IMAGE_EXTENSIONS)]
    if not found:
        raise EvalInputError(f"eval image folder {folder!r} contains no image files {IMAGE_EXTENSIONS}")
    return sorted(found)


def expand_eval_sources(globs: Sequence[str]) -> List[EvalSource]:
    """Resolves the globs now (at pipeline construction): missing or unknown inputs raise."""
    if not globs:
        raise EvalInputError("no --eval_images given")
    sources: List[EvalSource] = []
    for pattern in globs:
        remote = input_files.scheme_of(pattern) is not None
        matches = _match(pattern)
        if not matches and remote:  # object stores have no folders: list the prefix
            matches = [m for m in _match(pattern.rstrip("/") + "/**")
                       if m.lower().endswith(IMAGE_EXTENSIONS)]
        if not matches:
            raise EvalInputError(f"--eval_images {pattern!r} matches no file or folder")
        for path in matches:
            if not remote and os.path.isdir(path):
                sources += [EvalSource(IMAGE, p) for p in _walk_images(path)]
            elif not remote and os.path.getsize(path) == 0:
                raise EvalInputError(f"eval input {path!r} is empty (0 bytes)")
            else:
                sources.append(EvalSource(_kind_of(path), path))
    return list(dict.fromkeys(sources))  # a file matched by two globs is indexed once


def _checked(key: str, path: str, data: bytes) -> EvalItem:
    """(key, data) if the bytes decode (the embedders decode them again), else the error record."""
    try:
        decode_rgb(data, draft_side_px=64)  # a JPEG need not be decoded at full size to be checked
    except ImageDecodeError as err:
        return eval_error(key, path, err.name, str(err))
    except Exception as err:  # noqa: BLE001 - hostile bytes can fail Pillow in unnamed ways
        return eval_error(key, path, UNDECODABLE_IMAGE, f"{type(err).__name__}: {err}")
    return key, data


def _unchecked(key: str, path: str, data: bytes) -> EvalItem:
    return key, data


def _read_image(path: str, check) -> Iterator[EvalItem]:
    data, error = input_files.read_image_path(path)  # size cap, no FIFOs/devices, timeout
    if error:
        yield eval_error(path, path, error, "cannot read the image file")
    else:
        yield check(path, path, data)


def _read_tar(path: str, check) -> Iterator[EvalItem]:
    images = 0
    try:
        with input_files.open_file(path) as handle:
            for entry in iter_tar_files(handle, max_member_bytes=input_files.DEFAULT_MAX_IMAGE_BYTES):
                if not entry.name.lower().endswith(IMAGE_EXTENSIONS):
                    continue  # captions, metadata of a webdataset shard
                images += 1
                key = f"{path}#{entry.name}"
                if entry.data is None:
                    yield eval_error(key, path, input_files.IMAGE_FILE_TOO_LARGE,
                                     f"{entry.size} bytes > {input_files.DEFAULT_MAX_IMAGE_BYTES}")
                else:
                    yield check(key, path, entry.data)
    except Exception as err:  # noqa: BLE001 - DamagedArchiveError, OSError of any file system
        yield eval_error(path, path, UNREADABLE_FILE, err)
        return
    if not images:
        yield eval_error(path, path, NO_IMAGES_IN_FILE, f"no member with an extension {IMAGE_EXTENSIONS}")


class _CountingReader:
    """Counts the (uncompressed) bytes read: iter_records reads exactly one record before yielding
    it, so the count between two records is the byte offset of the next one (its key)."""

    def __init__(self, stream):
        self._stream, self.position = stream, 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.position += len(data)
        return data


def _example_item(record: bytes, path: str, offset: int, check) -> EvalItem:
    try:
        example = tfrecord_reader.parse_example(record)
        key = (example.get(KEY) or [b""])[0].decode("utf-8", "backslashreplace")
        image = (example.get(IMAGE_ENCODED) or [b""])[0]
    except (ValueError, IndexError, AttributeError) as err:  # not an Example; int/float features
        return eval_error(f"{path}@{offset}", path, MALFORMED_EXAMPLE, err)
    if not key:
        return eval_error(f"{path}@{offset}", path, MALFORMED_EXAMPLE, f"no {KEY!r} feature")
    if not isinstance(image, bytes) or not image:
        return eval_error(f"{path}#{key}", path, MALFORMED_EXAMPLE, f"no {IMAGE_ENCODED!r} bytes")
    return check(f"{path}#{key}", path, image)


def _read_tfrecord(path: str, check) -> Iterator[EvalItem]:
    records = offset = 0
    try:
        with input_files.open_file(path) as handle:
            stream = gzip.GzipFile(fileobj=handle, mode="rb") if path.lower().endswith(".gz") else handle
            counted = _CountingReader(stream)
            for record in tfrecord_reader.iter_records(counted, compressed=False):
                records += 1
                if isinstance(record, tfrecord_reader.CorruptRecord):
                    yield eval_error(f"{path}@{record.offset}", path, CORRUPT_RECORD, record.reason)
                else:
                    yield _example_item(record, path, offset, check)
                offset = counted.position
    except Exception as err:  # noqa: BLE001 - DamagedRecordFileError, OSError of any file system
        yield eval_error(path, path, UNREADABLE_FILE, err)
        return
    if not records:
        yield eval_error(path, path, NO_IMAGES_IN_FILE, "no records")


def read_eval_source(source: EvalSource, check: bool = True) -> Iterator[EvalItem]:
    """(eval_key, image bytes) of each good image of one source, an eval_error dict for each bad
    one (see the module docstring); never raises for bad content. `check`: decode each image."""
    checker = _checked if check else _unchecked
    if source.kind == IMAGE:
        yield from _read_image(source.path, checker)
    elif source.kind == TAR:
        yield from _read_tar(source.path, checker)
    elif source.kind == TFRECORD:
        yield from _read_tfrecord(source.path, checker)
    else:
        raise EvalInputError(f"unknown eval source kind {source.kind!r}")


def iter_eval_images(globs: Sequence[str], skipped: Optional[List[dict]] = None
                     ) -> Iterator[Tuple[str, bytes]]:
    """The good (eval_key, bytes) of the globs, in-process (CLI, calibration, benchmarks).

    Bad images and files never raise: their eval_error dicts are appended to `skipped` when given,
    and, either way, warned about loudly (count and first keys) once the images are all read.
    Configuration errors (see expand_eval_sources) raise EvalInputError before anything is read.
    """
    count, first_keys = 0, []
    for source in expand_eval_sources(globs):
        for item in read_eval_source(source):
            if not is_eval_error(item):
                yield item
                continue
            count += 1
            if len(first_keys) < WARN_FIRST_KEYS:
                first_keys.append(item["eval_key"])
            if skipped is not None:
                skipped.append(item)
    warn_unreadable_eval_images(count, first_keys)


def _split_key(eval_key: str) -> Tuple[str, str]:
    """(file, member or example key): the first '#' that ends a tar or TFRecord path, so image
    paths and member names containing '#' still resolve."""
    cut = eval_key.find("#")
    while cut != -1:
        head = eval_key[:cut].lower()
        if head.endswith((".tar",) + TFRECORD_SUFFIXES) or ".tfrecord-" in head:
            return eval_key[:cut], eval_key[cut + 1:]
        cut = eval_key.find("#", cut + 1)
    return eval_key, ""


def load_eval_image(eval_key: str) -> bytes:
    """The bytes of one eval image from its key (for audits: near_duplicates.jsonl, report)."""
    path, member = _split_key(eval_key)
    source = EvalSource(_kind_of(path) if member else IMAGE, path)
    for item in read_eval_source(source, check=False):
        if is_eval_error(item) and item["eval_key"] in (eval_key, path):
            raise EvalInputError(f"eval image {eval_key!r}: {item['error']}: {item['detail']}")
        if not is_eval_error(item) and item[0] == eval_key:
            return item[1]
    raise EvalInputError(f"eval image {eval_key!r} not found")
