"""The kept pairs in the format asked by `--output_format`, and the kept-pairs metadata parquet.

    tfrecord   (default) DIR/tfrecords/train-SSSSS-of-NNNNN.tfrecord   (schemas/example_schema.py)
    webdataset DIR/webdataset/SSSSS.tar                               (img2dataset layout)
    parquet    DIR/parquet/train-SSSSS-of-NNNNN.parquet               (KEPT_PAIRS columns + image)
    always     DIR/kept_pairs/kept-SSSSS-of-NNNNN.parquet             (KEPT_PAIRS columns, no image)

Every format holds the same pairs with the same bytes: the rows are parsed back from the
serialized tf.train.Example of each kept pair (schemas/tfrecord_reader.py, no TensorFlow), so the
image bytes are exactly `image/encoded` (the re-encoded RGB JPEG of pipeline/records.py, hence
`.jpg`) and the caption exactly `text` (the normalized alt-text the trainer trains on).

Columns (parquet) and .json fields (webdataset), KEPT_PAIRS: `key` (the pair's key, as in the
TFRecord), `url`, `caption` (normalized alt-text = TFRecord `text`), `raw_caption` (as found in the
input = `text/raw`), `width`, `height` (of the stored JPEG), `original_width`, `original_height`
(source image after EXIF orientation), `sha256` (hex SHA-256 of the stored JPEG bytes, as
img2dataset hashes the bytes it writes: checks the file), `source_sha256` (hex SHA-256 of the
source image bytes = TFRecord `image/sha256`, the curation's identity of "the same image"),
`image_size_bytes` (length of the stored JPEG). The parquet format adds `image` (binary: the JPEG).

Webdataset members per pair, contiguous: `{stem}.jpg`, `{stem}.txt` (caption, UTF-8), `{stem}.json`
(KEPT_PAIRS fields). webdataset (and open_clip) split a member name at the FIRST dot of its
basename and treat `/` as a directory, so the stem is `member_stem(key)`: the key with every byte
outside [A-Za-z0-9_-] percent-encoded (`a.b/c` -> `a%2Eb%2Fc`), which is injective (distinct keys,
distinct stems; urllib.parse.unquote gives the key back) and needs no dot. The .json keeps the
original `key`, which schemas/input_readers.read_webdataset reads back as the pair's key.

Writes go through Beam's FileBasedSink (`beam.io.Write`), the machinery of WriteToTFRecord and
WriteToParquet: each bundle (or each of `--num_shards` shards) is written to a temporary file and
the files are renamed into place once all are complete, so a failed or retried bundle never leaves
a partial or duplicated shard, names are deterministic (`00000.tar` ... in one contiguous range),
and every file system of Beam's FileSystems works (gs:// on Dataflow). The order of pairs inside
a shard is the runner's, as for the TFRecords. A tar is written as a stream (`tarfile` mode "w|":
no seek or tell on the object-store writer), with fixed member metadata (mtime 0, mode 0644, no
owner names), and ends with the end-of-archive marker written on close.
"""
import hashlib
import io
import json
import tarfile

import apache_beam as beam
from apache_beam.io import filebasedsink
from apache_beam.io.filesystems import FileSystems

TFRECORD, WEBDATASET, PARQUET = "tfrecord", "webdataset", "parquet"
OUTPUT_FORMATS = (TFRECORD, WEBDATASET, PARQUET)

# (directory under output_dir, file prefix in it, shard template, suffix) of each output.
LAYOUT = {
    TFRECORD: ("tfrecords", "train", "-SSSSS-of-NNNNN", ".tfrecord"),
    WEBDATASET: ("webdataset", "", "SSSSS", ".tar"),
    PARQUET: ("parquet", "train", "-SSSSS-of-NNNNN", ".parquet"),
    "kept_pairs": ("kept_pairs", "kept", "-SSSSS-of-NNNNN", ".parquet"),
}

KEPT_PAIRS_COLUMNS = ("key", "url", "caption", "raw_caption", "width", "height", "original_width",
                      "original_height", "sha256", "source_sha256", "image_size_bytes")
_SAFE_STEM_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def kept_pairs_schema(with_image: bool = False):
    """pyarrow schema of kept_pairs/*.parquet (and, with the `image` column, of parquet/*)."""
    import pyarrow as pa

    fields = [("key", pa.string()), ("url", pa.string()), ("caption", pa.string()),
              ("raw_caption", pa.string()), ("width", pa.int32()), ("height", pa.int32()),
              ("original_width", pa.int32()), ("original_height", pa.int32()),
              ("sha256", pa.string()), ("source_sha256", pa.string()),
              ("image_size_bytes", pa.int64())]
    if with_image:
        fields.append(("image", pa.binary()))
    return pa.schema(fields)


def example_row(serialized: bytes) -> dict:
    """One kept pair's serialized tf.train.Example -> {KEPT_PAIRS_COLUMNS..., "image": JPEG}."""
    from schemas import example_wire as w
    from schemas.tfrecord_reader import parse_example

    features = parse_example(serialized)

    def first(name, default):
        values = features.get(name) or [default]
        return values[0]

    def text(name):
        return first(name, b"").decode("utf-8")

    image = first(w.IMAGE_ENCODED, b"")
    return {
        "key": text(w.KEY), "url": text(w.URL), "caption": text(w.TEXT),
        "raw_caption": text(w.RAW_TEXT),
        "width": int(first(w.IMAGE_WIDTH, 0)), "height": int(first(w.IMAGE_HEIGHT, 0)),
        "original_width": int(first(w.ORIGINAL_WIDTH, 0)),
        "original_height": int(first(w.ORIGINAL_HEIGHT, 0)),
        "sha256": hashlib.sha256(image).hexdigest(),
        "source_sha256": first(w.IMAGE_SHA256, b"").decode("ascii"),
        "image_size_bytes": len(image), "image": image,
    }


def metadata_row(row: dict) -> dict:
    return {name: row[name] for name in KEPT_PAIRS_COLUMNS}


def member_stem(key: str) -> str:
    """The webdataset sample name of `key`: bytes outside [A-Za-z0-9_-] of its UTF-8 as `%XX`
    (no dot, no slash; injective). An empty key (never kept in practice) is `%`, which no
    non-empty key encodes to."""
    data = key.encode("utf-8", "surrogatepass")
    if not data:
        return "%"
    return "".join(chr(b) if b in _SAFE_STEM_BYTES else f"%{b:02X}" for b in data)


def webdataset_members(row: dict):
    """[(member name, bytes)] of one pair: .jpg, .txt, .json (this order, as img2dataset)."""
    stem = member_stem(row["key"])
    meta = json.dumps(metadata_row(row), ensure_ascii=True, sort_keys=False).encode("ascii")
    return [(f"{stem}.jpg", row["image"]), (f"{stem}.txt", row["caption"].encode("utf-8")),
            (f"{stem}.json", meta)]


class _TarHandle:
    """A tar stream over a Beam FileSystems writer: closing writes the end-of-archive marker."""

    def __init__(self, writer):
        self.writer = writer
        self.tar = tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT)

    def add(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), 0, 0o644
        info.uname = info.gname = ""
        self.tar.addfile(info, io.BytesIO(data))

    def close(self) -> None:
        self.tar.close()  # end-of-archive blocks; the writer is ours (external fileobj) to close
        self.writer.close()


class WebDatasetSink(filebasedsink.FileBasedSink):
    """FileBasedSink of webdataset tars: one record = one pair's rows dict (example_row)."""

    def __init__(self, file_path_prefix: str, num_shards: int = 0,
                 shard_name_template: str = "SSSSS", file_name_suffix: str = ".tar"):
        super().__init__(file_path_prefix, coder=None, file_name_suffix=file_name_suffix,
                         num_shards=num_shards, shard_name_template=shard_name_template,
                         mime_type="application/x-tar")

    def initialize_write(self):
        # The prefix is a directory (`webdataset/`, shards named `00000.tar` as img2dataset
        # names them), so Beam's temporary directory is its sibling and the final rename needs
        # the directory to exist on local file systems (object stores have no directories).
        tmp_dir = super().initialize_write()
        directory = self.file_path_prefix.get().rstrip("/")
        if not FileSystems.exists(directory):
            try:
                FileSystems.mkdirs(directory)
            except IOError:  # created meanwhile
                pass
        return tmp_dir

    def open(self, temp_path):
        return _TarHandle(super().open(temp_path))

    def write_record(self, file_handle, value):
        for name, data in webdataset_members(value):
            file_handle.add(name, data)

    def close(self, file_handle):
        file_handle.close()


def output_prefix(output_dir: str, name: str) -> str:
    directory, prefix, _, _ = LAYOUT[name]
    return FileSystems.join(output_dir, directory, prefix) if prefix else (
        FileSystems.join(output_dir, directory) + "/")


class WriteKeptPairs(beam.PTransform):
    """PCollection[serialized Example of a kept pair] -> the files of `output_format` plus
    kept_pairs/*.parquet. Returns {"examples": PCollection[written path], "kept_pairs": ...}."""

    def __init__(self, output_dir: str, output_format: str = TFRECORD, num_shards: int = 0):
        super().__init__()
        if output_format not in OUTPUT_FORMATS:
            raise ValueError(f"output_format {output_format!r} is not one of {OUTPUT_FORMATS}")
        self._out, self._format, self._num_shards = output_dir, output_format, num_shards

    def _sharding(self, name):
        _, _, template, suffix = LAYOUT[name]
        return {"num_shards": self._num_shards, "shard_name_template": template,
                "file_name_suffix": suffix}

    def expand(self, examples):
        out = self._out
        if self._format == TFRECORD:
            written = examples | "WriteTFRecords" >> beam.io.WriteToTFRecord(
                output_prefix(out, TFRECORD), **self._sharding(TFRECORD))
            rows = examples | "ExampleRows" >> beam.Map(example_row)
        else:
            rows = examples | "ExampleRows" >> beam.Map(example_row)
            if self._format == WEBDATASET:
                written = rows | "WriteWebDataset" >> beam.io.Write(
                    WebDatasetSink(output_prefix(out, WEBDATASET), **self._sharding(WEBDATASET)))
            else:
                written = rows | "WriteParquet" >> beam.io.WriteToParquet(
                    output_prefix(out, PARQUET), kept_pairs_schema(with_image=True),
                    **self._sharding(PARQUET))
        kept_pairs = (rows | "MetadataRows" >> beam.Map(metadata_row)
                      | "WriteKeptPairsParquet" >> beam.io.WriteToParquet(
                          output_prefix(out, "kept_pairs"), kept_pairs_schema(),
                          **self._sharding("kept_pairs")))
        return {"examples": written, "kept_pairs": kept_pairs}


def outputs_section(output_format: str, output_dir: str, example_files, kept_pairs_files) -> dict:
    """stats.json `outputs`: where the kept pairs went. Paths relative to output_dir; shard
    names form one contiguous range, so `brace` (webdataset, open_clip --train-data) is exact."""
    def entry(name, files):
        directory, prefix, template, suffix = LAYOUT[name]
        count = len(list(files))
        pattern = template.replace("SSSSS", "*").replace("NNNNN", f"{count:05d}")
        section = {"files": f"{directory}/{prefix}{pattern}{suffix}", "shards": count}
        if name == WEBDATASET and count:
            brace = f"{{00000..{count - 1:05d}}}" if count > 1 else "00000"
            section["brace"] = f"{directory}/{prefix}{brace}{suffix}"
        return section

    return {"format": output_format, "examples": entry(output_format, example_files),
            "kept_pairs": entry("kept_pairs", kept_pairs_files)}
