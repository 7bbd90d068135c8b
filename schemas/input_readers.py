"""The project's one reader of image/alt-text inputs: webdataset tars, parquet, TSV, TFRecords of
schemas/example_schema.py and image folders, as *raw pairs* (plain dicts, nothing decoded):

    {"key": str, "url": str, "text": bytes | None, "image": bytes | None,
     "unsafe_score": float | None, "read_error": str | None, "detail": str,
     "file": str, "ordinal": int, ["image_path": str]}

Used by curation (pipeline/readers.py wraps them in Beam), dedup's eval inputs, evaluation and
`align-search build`, so a file is read the same way everywhere. The rules (docs/PIPELINE.md):
- nothing is lost: every pair found comes out, with None for a missing part and `read_error` for
  a bad sample (`corrupt_record`, `malformed_example`, `malformed_metadata`, `line_too_long`,
  `image_file_too_large`, or a path error of schemas/input_files.py);
- a file that cannot be opened, or is damaged part-way (a tar without its end-of-archive marker,
  a bad header checksum, corrupt gzip, a truncated or garbage parquet file, a TFRecord whose
  framing breaks), yields the pairs read before the damage and then ONE pair with read_error
  `unreadable_file` whose `detail` names the file and the reason: never an exception, never a
  quiet early end;
- keys, urls and file names are always valid Unicode (schemas/tar_members.sanitize_text):
  undecodable bytes become `\\xNN`, lone surrogates `\\udNNN`, as literal text; a caption that
  is not valid UTF-8 (bytes, or a JSON caption holding a lone surrogate) is passed on as bytes
  that do not decode, for the caller to name (`invalid_utf8_text` in curation);
- `file` and `ordinal` (position of the pair in its file) identify each pair, even when two
  pairs share a key; default keys are unique across files: `{path relative to the input root}-{n}`.
"""
import bz2
import gzip
import json
import os
import posixpath
from typing import Iterator, Optional

from schemas import input_files, tfrecord_reader
from schemas.tar_members import iter_tar_files, sanitize_text

UNREADABLE_FILE = "unreadable_file"
CORRUPT_RECORD = "corrupt_record"  # a TFRecord record whose data CRC fails
MALFORMED_EXAMPLE = "malformed_example"  # a TFRecord record that is no tf.train.Example
MALFORMED_METADATA = "malformed_metadata"  # a webdataset .json that is not a JSON object
LINE_TOO_LONG = "line_too_long"  # a TSV line longer than max_line_bytes (never read whole)
READER_ERRORS = (UNREADABLE_FILE, CORRUPT_RECORD, MALFORMED_EXAMPLE, MALFORMED_METADATA,
                 LINE_TOO_LONG) + input_files.PATH_ERRORS

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff")
PARQUET_IMAGE_COLUMNS = ("jpg", "jpeg", "png", "webp", "image", "image_bytes")
DEFAULT_MAX_LINE_BYTES = 1 << 20


def raw_pair(key, url="", text=None, image=None, unsafe_score=None, read_error=None,
             image_path=None, file="", ordinal=0, detail="") -> dict:
    pair = {"key": sanitize_text(str(key)), "url": sanitize_text(str(url or "")), "text": text,
            "image": image, "unsafe_score": unsafe_score, "read_error": read_error,
            "detail": detail, "file": sanitize_text(file), "ordinal": ordinal}
    if image_path is not None:
        pair["image_path"] = image_path
    return pair


def _unreadable(path: str, ordinal: int, error: Exception) -> dict:
    detail = sanitize_text(f"{path}: {error}")[:500]
    return raw_pair(f"{path}#{UNREADABLE_FILE}", read_error=UNREADABLE_FILE, file=path,
                    ordinal=ordinal, detail=detail)


def _score(value) -> Optional[float]:
    try:
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None


def _as_text_bytes(value) -> Optional[bytes]:
    """A caption as bytes; a str with lone surrogates keeps them (surrogatepass) so the bytes do
    not decode and the pair is named invalid_utf8_text, not crashed on."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    return bytes(value)


def _webdataset_pair(key, members, score_field, path, ordinal, with_metadata=False) -> dict:
    meta, error = {}, None
    if "json" in members:
        try:
            meta = json.loads(members["json"])
        except (UnicodeDecodeError, ValueError, RecursionError):
            meta, error = {}, MALFORMED_METADATA
        if not isinstance(meta, dict):
            meta, error = {}, MALFORMED_METADATA
    image_ext = next((ext for ext in IMAGE_EXTENSIONS if ext in members), None)
    image = members.get(image_ext) if image_ext else None
    if image_ext and image is None:
        error = error or input_files.IMAGE_FILE_TOO_LARGE
    text = members.get("txt")
    caption = meta.get("caption")
    if text is None and isinstance(caption, str):
        text = _as_text_bytes(caption)
    json_key = meta.get("key")
    pair = raw_pair(key=json_key if isinstance(json_key, (str, int)) and json_key != "" else key,
                    url=meta.get("url") if isinstance(meta.get("url"), str) else "",
                    text=text, image=image, read_error=error, file=path, ordinal=ordinal,
                    unsafe_score=_score(meta.get(score_field)) if score_field else None)
    if with_metadata:  # in-process callers only: JSON values may hold lone surrogates (no coder)
        pair["meta"] = meta
    return pair


def read_webdataset(path: str, score_field: Optional[str] = None,
                    max_image_bytes: int = input_files.DEFAULT_MAX_IMAGE_BYTES,
                    with_metadata: bool = False) -> Iterator[dict]:
    """Pairs of one webdataset tar: files {key}.{ext} grouped by key (img2dataset layout); the
    pair's key is its .json `key` when there is one (as img2dataset writes it), else {key}.
    `with_metadata`: each pair also carries the parsed .json as `meta` (a dict, maybe empty)."""
    current, members, ordinal = None, {}, 0
    try:
        with input_files.open_file(path) as handle:
            for entry in iter_tar_files(handle, max_member_bytes=max_image_bytes):
                directory, base = posixpath.split(entry.name)
                if base.startswith("."):
                    continue  # macOS resource forks (._x.jpg), hidden files
                stem, _, ext = base.partition(".")
                key = posixpath.join(directory, stem) if directory else stem
                if key != current and current is not None:
                    yield _webdataset_pair(current, members, score_field, path, ordinal,
                                           with_metadata)
                    ordinal, members = ordinal + 1, {}
                current = key
                members[ext.lower()] = entry.data
    except Exception as error:  # noqa: BLE001  DamagedArchiveError, OSError of any file system
        if current is not None:
            yield _webdataset_pair(current, members, score_field, path, ordinal, with_metadata)
            ordinal, current = ordinal + 1, None
        yield _unreadable(path, ordinal, error)
    if current is not None:
        yield _webdataset_pair(current, members, score_field, path, ordinal, with_metadata)


def path_pair(base_file: str, key: str, location: str, text, score, ordinal: int) -> dict:
    """A pair whose image is named by `location` (read later by input_files.read_image_path)."""
    if input_files.is_download_url(location):
        return raw_pair(key, location, text, None, score, file=base_file, ordinal=ordinal,
                        read_error=input_files.REMOTE_IMAGE_NOT_DOWNLOADED)
    if not location:
        return raw_pair(key, location, text, None, score, file=base_file, ordinal=ordinal)
    if input_files.scheme_of(location) is None and not os.path.isabs(location):
        directory = base_file.rsplit("/", 1)[0] if "/" in base_file else "."
        image_path = f"{directory}/{location}"
    else:
        image_path = location
    return raw_pair(key, location, text, None, score, file=base_file, ordinal=ordinal,
                    image_path=image_path)


def _decompressed(path: str, handle):
    lower = path.lower()
    if lower.endswith(".gz"):
        return gzip.GzipFile(fileobj=handle, mode="rb")
    if lower.endswith(".bz2"):
        return bz2.BZ2File(handle, mode="rb")
    return handle


def _cell(row: dict, name: str) -> str:
    return row.get(name, b"").decode("utf-8", "backslashreplace").strip()


def read_tsv(path: str, score_field: Optional[str] = None, root: str = "",
             max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> Iterator[dict]:
    """CC-style TSV (`.gz`/`.bz2` too): `caption<TAB>url` per line (no header), or a header row
    naming the columns (`caption`, `url`, optional `key` and the score field). Default keys:
    `{path relative to root}-{line:09d}`. Lines longer than max_line_bytes are line_too_long."""
    name, ordinal, line_number = input_files.relative_to_root(path, root), 0, -1
    columns = [b"caption", b"url"]
    try:
        with input_files.open_file(path) as raw, _decompressed(path, raw) as handle:
            while True:
                line = handle.readline(max_line_bytes + 1)
                if not line:
                    break
                line_number += 1
                key = f"{name}-{line_number:09d}"
                if len(line) > max_line_bytes and not line.endswith(b"\n"):
                    while line and not line.endswith(b"\n"):  # skip the rest of the line
                        line = handle.readline(max_line_bytes + 1)
                    yield raw_pair(key, read_error=LINE_TOO_LONG, file=path, ordinal=ordinal,
                                   detail=f"line {line_number} longer than {max_line_bytes} bytes")
                    ordinal += 1
                    continue
                cells = line.rstrip(b"\r\n").split(b"\t")
                lowered = [c.strip().lower() for c in cells]
                if line_number == 0 and b"caption" in lowered and b"url" in lowered:
                    columns = lowered
                    continue
                if not line.strip():
                    continue
                row = dict(zip([c.decode("utf-8", "replace") for c in columns], cells))
                score = _score(_cell(row, score_field)) if score_field and score_field in row else None
                yield path_pair(path, _cell(row, "key") or key, _cell(row, "url"),
                                row.get("caption"), score, ordinal)
                ordinal += 1
    except Exception as error:  # noqa: BLE001  truncated gzip (EOFError), OSError, ...
        yield _unreadable(path, ordinal, error)


def _parquet_values(batch, column: Optional[str]):
    """The column as Python values, strings as *bytes* (a string column holding invalid UTF-8
    must not raise), struct images ({bytes, path}, Hugging Face style) as their bytes or path."""
    import pyarrow as pa

    if column is None or column not in batch.schema.names:
        return None
    array = batch.column(batch.schema.get_field_index(column))
    if pa.types.is_struct(array.type):
        return [(v or {}).get("bytes") or (v or {}).get("path") for v in array.to_pylist()]
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        array = array.view(pa.binary() if pa.types.is_string(array.type) else pa.large_binary())
    return array.to_pylist()


def read_parquet(path: str, text_column: str = "caption", image_column: Optional[str] = None,
                 score_field: Optional[str] = None, root: str = "",
                 batch_rows: int = 256) -> Iterator[dict]:
    """img2dataset parquet: image bytes in `jpg`/`png`/`webp`/... (or `image_column`), text in
    `text_column`, `key` and `url`; without an image-bytes column the `url` is read as a path."""
    import pyarrow.parquet as pq

    name, ordinal = input_files.relative_to_root(path, root), 0
    try:
        with input_files.open_file(path) as handle:
            parquet = pq.ParquetFile(handle)
            names = set(parquet.schema_arrow.names)
            image_col = image_column or next((c for c in PARQUET_IMAGE_COLUMNS if c in names), None)
            wanted = [c for c in ("key", "url", text_column, image_col, score_field) if c and c in names]
            for batch in parquet.iter_batches(batch_size=batch_rows, columns=wanted):
                keys, urls = _parquet_values(batch, "key"), _parquet_values(batch, "url")
                texts, images = _parquet_values(batch, text_column), _parquet_values(batch, image_col)
                scores = _parquet_values(batch, score_field)
                for i in range(batch.num_rows):
                    key = keys[i] if keys and keys[i] not in (None, b"") else None
                    key = (key.decode("utf-8", "backslashreplace") if isinstance(key, bytes)
                           else str(key) if key is not None else f"{name}-{ordinal:09d}")
                    url = urls[i] if urls and urls[i] is not None else b""
                    url = url.decode("utf-8", "backslashreplace") if isinstance(url, bytes) else str(url)
                    text = _as_text_bytes(texts[i]) if texts else None
                    score = _score(scores[i]) if scores else None
                    if images is not None:
                        image = images[i]
                        image = bytes(image) if isinstance(image, (bytes, bytearray, memoryview)) else (
                            None if image is None else str(image).encode("utf-8", "surrogatepass"))
                        yield raw_pair(key, url, text, image, score, file=path, ordinal=ordinal)
                    else:
                        yield path_pair(path, key, url.strip(), text, score, ordinal)
                    ordinal += 1
    except Exception as error:  # noqa: BLE001  ArrowInvalid, OSError (snappy, truncated), ...
        yield _unreadable(path, ordinal, error)


def read_tfrecord(path: str) -> Iterator[dict]:
    """Pairs of curated TFRecords (schemas/example_schema.py): key, url, text (the normalized
    `text`), image (`image/encoded`); `image_sha256` added when stored. `.gz` files are GZIP."""
    ordinal = 0
    try:
        with input_files.open_file(path) as handle:
            for record in tfrecord_reader.iter_records(handle, path.lower().endswith(".gz")):
                if isinstance(record, tfrecord_reader.CorruptRecord):
                    yield raw_pair(f"{path}@{record.offset}", read_error=CORRUPT_RECORD,
                                   file=path, ordinal=ordinal, detail=record.reason)
                else:
                    yield _example_pair(record, path, ordinal)
                ordinal += 1
    except Exception as error:  # noqa: BLE001  DamagedRecordFileError, OSError, ...
        yield _unreadable(path, ordinal, error)


def _example_pair(record: bytes, path: str, ordinal: int) -> dict:
    from schemas.example_wire import IMAGE_ENCODED, IMAGE_SHA256, KEY, TEXT, URL

    try:
        example = tfrecord_reader.parse_example(record)
        key = example.get(KEY, [b""])[0].decode("utf-8", "backslashreplace")
    except (ValueError, IndexError, AttributeError) as error:
        return raw_pair(f"{path}#{ordinal}", read_error=MALFORMED_EXAMPLE, file=path,
                        ordinal=ordinal, detail=str(error))
    first = {name: (example.get(name) or [None])[0] for name in (IMAGE_ENCODED, TEXT, URL, IMAGE_SHA256)}
    url = first[URL].decode("utf-8", "backslashreplace") if isinstance(first[URL], bytes) else ""
    pair = raw_pair(key or f"{path}#{ordinal}", url, first[TEXT], first[IMAGE_ENCODED],
                    file=path, ordinal=ordinal)
    if isinstance(first[IMAGE_SHA256], bytes) and first[IMAGE_SHA256]:
        pair["image_sha256"] = first[IMAGE_SHA256].decode("ascii", "replace")
    return pair


def read_image_folder(root: str) -> Iterator[dict]:
    """Every image file under `root` (sorted, recursive), named by path: key = path relative to
    root, text = the sidecar `<stem>.txt` when there is one (bytes), else None."""
    paths = input_files.match_files(root.rstrip("/") + "/**")
    names = set(paths)
    for ordinal, path in enumerate(p for p in paths if p.lower().rsplit(".", 1)[-1] in IMAGE_EXTENSIONS):
        sidecar = path.rsplit(".", 1)[0] + ".txt"
        text, error = None, None
        if sidecar in names:
            text, error = input_files.read_image_path(sidecar)
        pair = raw_pair(input_files.relative_to_root(path, root.rstrip("/") + "/"), path, text,
                        file=path, ordinal=ordinal, image_path=path, read_error=error)
        yield pair


def load_image(pair: dict, max_bytes: int = input_files.DEFAULT_MAX_IMAGE_BYTES,
               timeout_s: float = input_files.DEFAULT_READ_TIMEOUT_S) -> dict:
    """Reads the image named by `image_path` (if any) into `image`, or sets `read_error`."""
    path = pair.pop("image_path", None)
    if path is not None and not pair.get("read_error"):
        pair["image"], pair["read_error"] = input_files.read_image_path(path, max_bytes, timeout_s)
    return pair
