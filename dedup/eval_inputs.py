"""Evaluation-set inputs of `--eval_images GLOB` (repeatable).

A glob may match: image folder trees (walked recursively for image files), image files,
webdataset shards (`.tar`, images are the members with an image extension) and TFRecords of
schemas/ (`.tfrecord`, `.tfrecord.gz`; `image/encoded` and `key`). Local paths and gs:// work.
Every eval image gets a key that says where it is, so audits can open it (`load_eval_image`):
  image file: its path;  tar member: "SHARD.tar#MEMBER";  TFRecord example: "FILE.tfrecord#KEY".
Missing inputs fail when the pipeline is built; corrupt ones fail when read: `EvalInputError`,
naming the file, never a silent skip (a skipped eval image could leak into the training set).
"""
import dataclasses
import glob as globlib
import os
import tarfile
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple

from apache_beam.io.filesystems import FileSystems
from PIL import Image

from dedup.images import decode_rgb

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords", ".tfrecord.gz", ".tfrecords.gz")
IMAGE, TAR, TFRECORD = "image", "tar", "tfrecord"


class EvalInputError(ValueError):
    """An evaluation input is missing, empty, corrupt or of an unknown kind."""


@dataclasses.dataclass(frozen=True)
class EvalSource:
    kind: str  # IMAGE, TAR or TFRECORD
    path: str


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
    if "://" in pattern:
        return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)
    return sorted(globlib.glob(os.path.expanduser(pattern), recursive=True))


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
        matches = _match(pattern)
        if not matches and "://" in pattern:  # object stores have no folders: list the prefix
            matches = [m for m in _match(pattern.rstrip("/") + "/**")
                       if m.lower().endswith(IMAGE_EXTENSIONS)]
        if not matches:
            raise EvalInputError(f"--eval_images {pattern!r} matches no file or folder")
        for path in matches:
            if os.path.isdir(path):
                sources += [EvalSource(IMAGE, p) for p in _walk_images(path)]
            elif "://" not in path and os.path.getsize(path) == 0:
                raise EvalInputError(f"eval input {path!r} is empty (0 bytes)")
            else:
                sources.append(EvalSource(_kind_of(path), path))
    return list(dict.fromkeys(sources))  # a file matched by two globs is indexed once


def _read(path: str) -> bytes:
    with FileSystems.open(path) as f:
        return f.read()


def _checked(key: str, image_bytes: bytes) -> Tuple[str, bytes]:
    try:
        decode_rgb(image_bytes, draft_side_px=64)
    except Image.DecompressionBombError as err:
        raise EvalInputError(f"eval image {key!r} is too large to decode safely ({err}); downscale "
                             "it in the eval set (skipping it could leak it into training)") from err
    except Exception as err:  # noqa: BLE001 - any decoder error is a corrupt eval image
        raise EvalInputError(f"corrupt eval image {key!r}: {type(err).__name__}: {err}") from err
    return key, image_bytes


def _unchecked(key: str, image_bytes: bytes) -> Tuple[str, bytes]:
    return key, image_bytes


def _read_tar(path: str, check=_checked) -> Iterator[Tuple[str, bytes]]:
    count = 0
    try:
        with FileSystems.open(path) as raw, tarfile.open(fileobj=raw, mode="r|*") as tar:
            for member in tar:
                if member.isfile() and member.name.lower().endswith(IMAGE_EXTENSIONS):
                    count += 1
                    yield check(f"{path}#{member.name}", tar.extractfile(member).read())
    except (tarfile.TarError, EOFError, OSError) as err:
        raise EvalInputError(f"corrupt eval webdataset shard {path!r}: {err}") from err
    if count == 0:
        raise EvalInputError(f"eval webdataset shard {path!r} holds no image members")


def _read_tfrecord(path: str, check=_checked) -> Iterator[Tuple[str, bytes]]:
    import tensorflow as tf  # only TFRecord inputs need TensorFlow

    from schemas.example_schema import IMAGE_ENCODED, KEY, parse_example_dict

    compression = "GZIP" if path.lower().endswith(".gz") else ""
    count = 0
    try:
        for record in tf.data.TFRecordDataset(path, compression_type=compression).as_numpy_iterator():
            example = parse_example_dict(record)
            if not example.get(IMAGE_ENCODED) or not example.get(KEY):
                raise EvalInputError(f"eval TFRecord {path!r}: an example lacks "
                                     f"{IMAGE_ENCODED!r} or {KEY!r} (schemas/example_schema.py)")
            count += 1
            yield check(f"{path}#{example[KEY].decode('utf-8')}", example[IMAGE_ENCODED])
    except (tf.errors.DataLossError, tf.errors.OpError) as err:
        raise EvalInputError(f"corrupt eval TFRecord {path!r}: {err.message}") from err
    if count == 0:
        raise EvalInputError(f"eval TFRecord {path!r} holds no examples")


def read_eval_source(source: EvalSource, check: bool = True) -> Iterator[Tuple[str, bytes]]:
    """(eval_key, image bytes) of one source; each image is checked to decode (unless `check`)."""
    checker = _checked if check else _unchecked
    if source.kind == IMAGE:
        try:
            data = _read(source.path)
        except (OSError, IOError) as err:
            raise EvalInputError(f"cannot read eval image {source.path!r}: {err}") from err
        yield checker(source.path, data)
    elif source.kind == TAR:
        yield from _read_tar(source.path, checker)
    elif source.kind == TFRECORD:
        yield from _read_tfrecord(source.path, checker)
    else:
        raise EvalInputError(f"unknown eval source kind {source.kind!r}")


def iter_eval_images(globs: Sequence[str], skipped: Optional[List[str]] = None
                     ) -> Iterable[Tuple[str, bytes]]:
    """All (eval_key, bytes) of the globs, in-process (CLI, benchmarks).

    With a `skipped` list, unreadable images are appended to it (as "key: reason") instead of
    raising: for calibration and k-means samples, never for the removal itself.
    """
    for source in expand_eval_sources(globs):
        if skipped is None:
            yield from read_eval_source(source)
            continue
        for key, data in read_eval_source(source, check=False):
            try:
                yield _checked(key, data)
            except EvalInputError as err:
                skipped.append(str(err))


def load_eval_image(eval_key: str) -> bytes:
    """The bytes of one eval image from its key (for audits: near_duplicates.jsonl, report)."""
    path, _, member = eval_key.partition("#")
    if not member:
        return _read(path)
    for key, data in read_eval_source(EvalSource(_kind_of(path), path)):
        if key == eval_key:
            return data
    raise EvalInputError(f"eval image {eval_key!r} not found")
