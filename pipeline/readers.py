"""`ReadRawPairs`: the input files of `align-curate` -> one raw pair per input pair, in Beam.

The reading itself is schemas/input_readers.py (shared with dedup/, evaluation and search): img2dataset
webdataset tars, img2dataset parquet, CC-style TSV (`.gz`/`.bz2` too). A pair whose parts are
missing still comes out (with None), a bad sample carries its `read_error`, and a file that
cannot be read or is damaged part-way yields the pairs read before the damage plus one
`unreadable_file` pair naming it: never an exception that would fail the job, never a silent end.
Files are opened with Beam's FileSystems (local, gs://, ...). Images named by path (TSV, parquet
without an image-bytes column) are read after a Reshuffle, so reads spread over workers, through
schemas/input_files.read_image_path (regular files only, a size cap, a time bound on object stores).
"""
from typing import Iterator, Optional

import apache_beam as beam
from apache_beam.io import fileio

from pipeline import live_counters
from schemas import input_files, input_readers
from schemas.input_readers import (  # noqa: F401  (error names used by records.py and tests)
    READER_ERRORS,
    UNREADABLE_FILE,
    raw_pair,
)

INPUT_FORMATS = ("webdataset", "parquet", "tsv")
IMAGE_NOT_FOUND = input_files.IMAGE_NOT_FOUND
REMOTE_IMAGE_NOT_DOWNLOADED = input_files.REMOTE_IMAGE_NOT_DOWNLOADED


def fetch_image(pair: dict, max_bytes: int = input_files.DEFAULT_MAX_IMAGE_BYTES,
                timeout_s: float = input_files.DEFAULT_READ_TIMEOUT_S) -> dict:
    """Reads the image named by `image_path` (if any) into `image`, or names why not."""
    return input_readers.load_image(pair, max_bytes, timeout_s)


class ReadRawPairs(beam.PTransform):
    """file_pattern (Beam glob) -> PCollection[raw pair dict] of every pair in the matched files."""

    def __init__(self, file_pattern: str, input_format: str, text_column: str = "caption",
                 image_column: Optional[str] = None, score_field: Optional[str] = None,
                 reshuffle: bool = True,
                 max_image_bytes: int = input_files.DEFAULT_MAX_IMAGE_BYTES,
                 image_read_timeout_s: float = input_files.DEFAULT_READ_TIMEOUT_S):
        super().__init__()
        if input_format not in INPUT_FORMATS:
            raise ValueError(f"input_format must be one of {INPUT_FORMATS}, got {input_format!r}")
        self._pattern, self._format, self._reshuffle = file_pattern, input_format, reshuffle
        self._text_column, self._image_column, self._score_field = (
            text_column, image_column, score_field)
        self._max_image_bytes, self._timeout_s = max_image_bytes, image_read_timeout_s
        self._root = input_files.input_root(file_pattern)

    def _read(self, metadata) -> Iterator[dict]:
        """The pairs of one file, counted as they are read (pipeline/live_counters.py)."""
        live_counters.count(live_counters.READ_FILES)
        pairs_read = live_counters.read_pairs_counter(self._format)
        for pair in self._pairs_of(metadata.path):
            live_counters.count(pairs_read)
            if pair.get("read_error") == UNREADABLE_FILE:
                live_counters.count(live_counters.READ_UNREADABLE_FILES)
            yield pair

    def _pairs_of(self, path: str) -> Iterator[dict]:
        if self._format == "webdataset":
            return input_readers.read_webdataset(path, self._score_field, self._max_image_bytes)
        if self._format == "tsv":
            return input_readers.read_tsv(path, self._score_field, root=self._root)
        return input_readers.read_parquet(path, self._text_column, self._image_column,
                                          self._score_field, root=self._root)

    def expand(self, pbegin):
        fetch = beam.Map(fetch_image, self._max_image_bytes, self._timeout_s)
        pairs = (pbegin
                 | "MatchInputFiles" >> fileio.MatchFiles(self._pattern,
                                                          empty_match_treatment="DISALLOW")
                 | "ReshuffleFiles" >> beam.Reshuffle()
                 | "ReadPairsOfFile" >> beam.FlatMap(self._read))
        if not self._reshuffle:
            return pairs | "FetchNamedImages" >> fetch
        # Pairs that name their image (TSV, parquet without bytes) are spread over workers before
        # the image reads; pairs that carry their bytes (webdataset) already are, one file each.
        with_bytes = pairs | "CarryBytes" >> beam.Filter(lambda p: "image_path" not in p)
        fetched = (pairs
                   | "NameImages" >> beam.Filter(lambda p: "image_path" in p)
                   | "ReshuffleNamedImages" >> beam.Reshuffle()
                   | "FetchNamedImages" >> fetch)
        return (with_bytes, fetched) | "AllPairs" >> beam.Flatten()
