"""Reading raw image/alt-text pairs: img2dataset webdataset tars, img2dataset parquet, CC-style TSV.

`ReadRawPairs(file_pattern, input_format)` yields one *raw pair* dict per input pair, nothing
decoded or judged yet (that is pipeline/records.py):

    {"key": str, "url": str, "text": bytes | None, "image": bytes | None,
     "unsafe_score": float | None, "read_error": str | None}

A pair whose parts are missing still comes out (with None), so it is counted as an error and never
silently lost. Files are opened with Beam's FileSystems, so local paths, gs:// and every other Beam
filesystem work. Images named by path (TSV, parquet without an image-bytes column) are resolved
relative to the file that names them and read after a Reshuffle, so reads spread over workers.
"""
import io
import json
import os
import posixpath
import tarfile
from typing import Iterator, Optional

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystems import FileSystems

INPUT_FORMATS = ("webdataset", "parquet", "tsv")
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff")
PARQUET_IMAGE_COLUMNS = ("jpg", "jpeg", "png", "webp", "image", "image_bytes")

# Reader error names (counted under `errors` in stats.json).
UNREADABLE_FILE = "unreadable_file"  # a tar/parquet/tsv that cannot be opened or ends early
IMAGE_NOT_FOUND = "image_not_found"  # a named image path that does not exist or cannot be read
REMOTE_IMAGE_NOT_DOWNLOADED = "remote_image_not_downloaded"  # http(s) URL: run img2dataset first
READER_ERRORS = (UNREADABLE_FILE, IMAGE_NOT_FOUND, REMOTE_IMAGE_NOT_DOWNLOADED)


def raw_pair(key, url="", text=None, image=None, unsafe_score=None, read_error=None,
             image_path=None) -> dict:
    pair = {"key": key, "url": url or "", "text": text, "image": image,
            "unsafe_score": unsafe_score, "read_error": read_error}
    if image_path is not None:
        pair["image_path"] = image_path
    return pair


def _score(value) -> Optional[float]:
    try:
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None


def _webdataset_sample(key: str, members: dict, score_field: Optional[str]) -> dict:
    meta = {}
    if "json" in members:
        try:
            meta = json.loads(members["json"].decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            meta = {}
        meta = meta if isinstance(meta, dict) else {}
    image = next((members[ext] for ext in IMAGE_EXTENSIONS if ext in members), None)
    text = members.get("txt")
    if text is None and isinstance(meta.get("caption"), str):
        text = meta["caption"].encode("utf-8")
    return raw_pair(key=str(meta.get("key") or key), url=str(meta.get("url") or ""), text=text,
                    image=image, unsafe_score=_score(meta.get(score_field)) if score_field else None)


def read_webdataset(path: str, score_field: Optional[str] = None) -> Iterator[dict]:
    """Pairs of one webdataset tar: members {key}.{ext} grouped by key (img2dataset layout)."""
    current_key, members = None, {}
    try:
        with FileSystems.open(path) as handle, tarfile.open(fileobj=handle, mode="r|*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                directory, base = posixpath.split(member.name)
                if base.startswith("."):
                    continue
                stem, _, ext = base.partition(".")
                key = posixpath.join(directory, stem) if directory else stem
                if key != current_key and current_key is not None:
                    yield _webdataset_sample(current_key, members, score_field)
                    members = {}
                current_key = key
                members[ext.lower()] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as error:
        if current_key is not None:
            yield _webdataset_sample(current_key, members, score_field)
        current_key = None
        yield raw_pair(key=f"{path}#unreadable", read_error=UNREADABLE_FILE, url=str(error)[:200])
    if current_key is not None:
        yield _webdataset_sample(current_key, members, score_field)


def _resolve(base_file: str, location: str) -> str:
    if "://" in location or os.path.isabs(location):
        return location
    directory = base_file.rsplit("/", 1)[0] if "/" in base_file else "."
    return FileSystems.join(directory, location)


def _path_pair(base_file: str, key: str, url: str, text, score) -> dict:
    if url.startswith(("http://", "https://")):
        return raw_pair(key, url, text, None, score, read_error=REMOTE_IMAGE_NOT_DOWNLOADED)
    if not url:
        return raw_pair(key, url, text, None, score)  # no image: counted as missing_image
    return raw_pair(key, url, text, None, score, image_path=_resolve(base_file, url))


def _stem(path: str) -> str:
    return posixpath.basename(path).split(".")[0]


def read_tsv(path: str, score_field: Optional[str] = None) -> Iterator[dict]:
    """CC-style TSV: `caption<TAB>url` per line (no header), or a header row naming the columns
    (`caption`, `url`, optional `key` and the score field). Keys default to `{file stem}-{line}`."""
    with FileSystems.open(path) as handle:
        columns = ["caption", "url"]
        for line_number, line in enumerate(io.BufferedReader(handle, 1 << 20)):
            line = line.rstrip(b"\r\n")
            cells = line.split(b"\t")
            lowered = [c.strip().lower() for c in cells]
            if line_number == 0 and b"caption" in lowered and b"url" in lowered:
                columns = [c.decode("utf-8", "replace") for c in lowered]
                continue
            if not line.strip():
                continue
            row = dict(zip(columns, cells))
            key = row.get("key", b"").decode("utf-8", "replace") or f"{_stem(path)}-{line_number:09d}"
            url = row.get("url", b"").decode("utf-8", "replace").strip()
            score = _score(row[score_field].decode("ascii", "replace")) if (
                score_field and score_field in row) else None
            yield _path_pair(path, key, url, row.get("caption"), score)


def read_parquet(path: str, text_column: str = "caption", image_column: Optional[str] = None,
                 score_field: Optional[str] = None, batch_rows: int = 256) -> Iterator[dict]:
    """img2dataset parquet: image bytes in `jpg`/`png`/`webp`/... (or `image_column`), text in
    `text_column`, `key` and `url`; without an image-bytes column the `url` is read as a path."""
    import pyarrow.parquet as pq

    with FileSystems.open(path) as handle:
        parquet = pq.ParquetFile(handle)
        names = set(parquet.schema_arrow.names)
        image_col = image_column or next((c for c in PARQUET_IMAGE_COLUMNS if c in names), None)
        wanted = [c for c in ("key", "url", text_column, image_col, score_field) if c and c in names]
        row_number = 0
        for batch in parquet.iter_batches(batch_size=batch_rows, columns=wanted):
            rows = batch.to_pydict()
            for i in range(batch.num_rows):
                key = rows["key"][i] if "key" in rows and rows["key"][i] else None
                key = str(key) if key is not None else f"{_stem(path)}-{row_number:09d}"
                url = str(rows["url"][i] or "") if "url" in rows else ""
                text = rows[text_column][i] if text_column in rows else None
                text = text.encode("utf-8") if isinstance(text, str) else text
                score = _score(rows[score_field][i]) if score_field in rows else None
                row_number += 1
                if image_col in rows:
                    yield raw_pair(key, url, text, rows[image_col][i], score)
                else:
                    yield _path_pair(path, key, url, text, score)


def fetch_image(pair: dict) -> dict:
    """Reads the image named by `image_path` (if any) into `image`; a missing file is an error."""
    path = pair.pop("image_path", None)
    if path is None:
        return pair
    try:
        with FileSystems.open(path) as handle:
            pair["image"] = handle.read()
    except Exception:  # noqa: BLE001  FileSystems raise BeamIOError, OSError, ... per scheme
        pair["read_error"] = IMAGE_NOT_FOUND
    return pair


class ReadRawPairs(beam.PTransform):
    """file_pattern (Beam glob) -> PCollection[raw pair dict] of every pair in the matched files."""

    def __init__(self, file_pattern: str, input_format: str, text_column: str = "caption",
                 image_column: Optional[str] = None, score_field: Optional[str] = None,
                 reshuffle: bool = True):
        super().__init__()
        if input_format not in INPUT_FORMATS:
            raise ValueError(f"input_format must be one of {INPUT_FORMATS}, got {input_format!r}")
        self._pattern, self._format, self._reshuffle = file_pattern, input_format, reshuffle
        self._text_column, self._image_column, self._score_field = (
            text_column, image_column, score_field)

    def _read(self, metadata) -> Iterator[dict]:
        path = metadata.path
        if self._format == "webdataset":
            return read_webdataset(path, self._score_field)
        if self._format == "tsv":
            return read_tsv(path, self._score_field)
        return read_parquet(path, self._text_column, self._image_column, self._score_field)

    def expand(self, pbegin):
        pairs = (pbegin
                 | "MatchInputFiles" >> fileio.MatchFiles(self._pattern,
                                                          empty_match_treatment="DISALLOW")
                 | "ReshuffleFiles" >> beam.Reshuffle()
                 | "ReadPairsOfFile" >> beam.FlatMap(self._read))
        if not self._reshuffle:
            return pairs | "FetchNamedImages" >> beam.Map(fetch_image)
        # Pairs that name their image (TSV, parquet without bytes) are spread over workers before
        # the image reads; pairs that carry their bytes (webdataset) already are, one file each.
        with_bytes = pairs | "CarryBytes" >> beam.Filter(lambda p: "image_path" not in p)
        fetched = (pairs
                   | "NameImages" >> beam.Filter(lambda p: "image_path" in p)
                   | "ReshuffleNamedImages" >> beam.Reshuffle()
                   | "FetchNamedImages" >> beam.Map(fetch_image))
        return (with_bytes, fetched) | "AllPairs" >> beam.Flatten()
