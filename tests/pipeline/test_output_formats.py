"""`align-curate --output_format tfrecord|webdataset|parquet` and kept_pairs/*.parquet: the same
input curated three times; every format holds exactly the TFRecords' keys, captions and bytes."""
import glob
import hashlib
import io
import json
import os
import tarfile
import urllib.parse

import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipeline import curate, output_formats
from schemas import input_readers
from tests.pipeline import image_factory as f

# (key in the .json, caption, image size): keys with dots, slashes, spaces and non-ASCII, which a
# webdataset member name cannot hold as is.
PAIRS = [
    ("plain_key-1", "a red bus on the street", (300, 300)),
    ("shard.0.tsv-000000001", "a blue car near the house", (320, 300)),
    ("dir/sub.dir/name.with.dots", "a green tree in the park", (300, 340)),
    ("caf\u00e9 \u00fcber%20x", "an old man with a hat", (310, 310)),
    (".hidden", "a yellow dog on the grass", (300, 330)),
    ("too-small", "a small red bus here", (150, 300)),  # dropped: image_too_small
    ("few-words", "two words", (300, 300)),  # dropped: too_few_words
]
KEPT = {key for key, caption, size in PAIRS if min(size) > 200 and len(caption.split()) >= 3}


def _write_input(root) -> str:
    with tarfile.open(os.path.join(root, "00000.tar"), "w", format=tarfile.PAX_FORMAT) as tar:
        for i, (key, caption, size) in enumerate(PAIRS):
            meta = json.dumps({"key": key, "url": f"http://example.com/{i}.png"}).encode()
            for name, data in ((f"{i:05d}.png", f.noisy_png(*size, seed=i)),
                               (f"{i:05d}.txt", caption.encode()), (f"{i:05d}.json", meta)):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return os.path.join(root, "*.tar")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    pattern = _write_input(str(tmp_path_factory.mktemp("input")))
    result = {}
    for output_format in output_formats.OUTPUT_FORMATS:
        out = str(tmp_path_factory.mktemp(output_format))
        stats = curate.run(["--input", pattern, "--input_format", "webdataset",
                            "--output_dir", out, "--vocab_size", "100", "--num_shards", "2",
                            "--output_format", output_format, "--runner=DirectRunner"])
        result[output_format] = (out, stats)
    return result


def _tfrecord_pairs(out):
    files = sorted(glob.glob(os.path.join(out, "tfrecords", "train-*-of-00002.tfrecord")))
    assert len(files) == 2
    pairs = [p for path in files for p in input_readers.read_tfrecord(path)]
    assert not any(p["read_error"] for p in pairs)
    return {p["key"]: p for p in pairs}


def _expected_rows(tfrecords):
    """The KEPT_PAIRS columns as the TFRecords of the same input hold them."""
    from schemas.tfrecord_reader import iter_records

    rows = {}
    for path in glob.glob(os.path.join(tfrecords, "tfrecords", "*.tfrecord")):
        with open(path, "rb") as handle:
            for record in iter_records(handle):
                row = output_formats.example_row(record)
                rows[row["key"]] = row
    return rows


def test_tfrecord_is_the_default_and_unchanged(runs):
    out, stats = runs["tfrecord"]
    assert stats["config"]["output_format"] == "tfrecord"
    assert set(_tfrecord_pairs(out)) == KEPT and stats["kept_pairs"] == len(KEPT)
    assert not os.path.exists(os.path.join(out, "webdataset"))
    assert not os.path.exists(os.path.join(out, "parquet"))
    assert stats["outputs"]["examples"] == {
        "files": "tfrecords/train-*-of-00002.tfrecord", "shards": 2}


def test_every_format_writes_the_kept_pairs_metadata_parquet(runs):
    expected = _expected_rows(runs["tfrecord"][0])
    for output_format, (out, stats) in runs.items():
        files = sorted(glob.glob(os.path.join(out, "kept_pairs", "kept-*-of-00002.parquet")))
        assert len(files) == 2, output_format
        assert stats["outputs"]["kept_pairs"] == {
            "files": "kept_pairs/kept-*-of-00002.parquet", "shards": 2}
        rows = [r for path in files for r in pq.read_table(path).to_pylist()]
        assert pq.read_schema(files[0]).names == list(output_formats.KEPT_PAIRS_COLUMNS)
        assert {r["key"]: r for r in rows} == {
            key: output_formats.metadata_row(row) for key, row in expected.items()}
        assert len(rows) == len(KEPT) and {r["key"] for r in rows} == KEPT
        for row in rows:
            image = expected[row["key"]]["image"]
            assert row["sha256"] == hashlib.sha256(image).hexdigest()
            assert row["image_size_bytes"] == len(image)
            assert Image.open(io.BytesIO(image)).size == (row["width"], row["height"])
            assert len(row["source_sha256"]) == 64 and row["source_sha256"] != row["sha256"]


def test_webdataset_holds_the_tfrecord_pairs(runs):
    tfrecords = _tfrecord_pairs(runs["tfrecord"][0])
    out, stats = runs["webdataset"]
    assert not os.path.exists(os.path.join(out, "tfrecords"))
    shards = sorted(glob.glob(os.path.join(out, "webdataset", "*.tar")))
    assert [os.path.basename(s) for s in shards] == ["00000.tar", "00001.tar"]
    assert stats["outputs"]["examples"] == {"files": "webdataset/*.tar", "shards": 2,
                                            "brace": "webdataset/{00000..00001}.tar"}
    # Our reader (the one curation uses): keys from the .json, captions and bytes as stored.
    pairs = [p for s in shards for p in input_readers.read_webdataset(s)]
    assert not any(p["read_error"] for p in pairs)
    assert sorted(p["key"] for p in pairs) == sorted(tfrecords)
    for pair in pairs:
        expected = tfrecords[pair["key"]]
        assert (pair["text"], pair["image"], pair["url"]) == (
            expected["text"], expected["image"], expected["url"])
    # Plain tarfile: three members per pair, contiguous, stems without dots or slashes.
    for shard in shards:
        with tarfile.open(shard) as tar:
            members = tar.getmembers()
            names = [m.name for m in members]
            assert len(names) % 3 == 0
            for i in range(0, len(names), 3):
                stem = names[i][:-len(".jpg")]
                assert names[i:i + 3] == [f"{stem}.jpg", f"{stem}.txt", f"{stem}.json"]
                assert "." not in stem and "/" not in stem
                meta = json.loads(tar.extractfile(members[i + 2]).read())
                assert stem == output_formats.member_stem(meta["key"])
                assert urllib.parse.unquote(stem) == meta["key"]
                expected = tfrecords[meta["key"]]
                assert tar.extractfile(members[i]).read() == expected["image"]
                assert tar.extractfile(members[i + 1]).read() == expected["text"]
                assert meta["caption"].encode() == expected["text"]
                assert meta["sha256"] == hashlib.sha256(expected["image"]).hexdigest()
                assert meta["source_sha256"] == expected["image_sha256"]
                assert all(m.mtime == 0 for m in members[i:i + 3])


def test_parquet_holds_the_tfrecord_pairs(runs):
    tfrecords = _tfrecord_pairs(runs["tfrecord"][0])
    out, stats = runs["parquet"]
    files = sorted(glob.glob(os.path.join(out, "parquet", "train-*-of-00002.parquet")))
    assert len(files) == 2
    assert stats["outputs"]["examples"] == {"files": "parquet/train-*-of-00002.parquet",
                                            "shards": 2}
    rows = [r for path in files for r in pq.read_table(path).to_pylist()]
    assert sorted(r["key"] for r in rows) == sorted(tfrecords)
    for row in rows:
        expected = tfrecords[row["key"]]
        assert (row["caption"].encode(), row["image"], row["url"]) == (
            expected["text"], expected["image"], expected["url"])
    # Our parquet reader reads it back as an input (image column `image`, text `caption`).
    pairs = [p for path in files for p in input_readers.read_parquet(path)]
    assert {p["key"]: (p["text"], p["image"]) for p in pairs} == {
        key: (p["text"], p["image"]) for key, p in tfrecords.items()}


def test_member_stem_is_injective_and_dot_free():
    keys = ["a.b", "a%2Eb", "a_b", "a/b", "", "%", "\u00e9", "e\u0301", "plain-1_x"]
    stems = [output_formats.member_stem(k) for k in keys]
    assert len(set(stems)) == len(keys)
    assert all("." not in s and "/" not in s and s for s in stems)
    assert output_formats.member_stem("plain-1_x") == "plain-1_x"
    assert output_formats.member_stem("a.b/c") == "a%2Eb%2Fc"


@pytest.mark.parametrize("output_format", output_formats.OUTPUT_FORMATS)
def test_no_kept_pairs_gives_one_empty_readable_shard(tmp_path, output_format):
    import apache_beam as beam
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    with beam.Pipeline(runner=FnApiRunner()) as pipeline:
        (pipeline | beam.Create([]).with_output_types(bytes)
         | output_formats.WriteKeptPairs(str(tmp_path), output_format))
    directory, prefix, _, suffix = output_formats.LAYOUT[output_format]
    files = glob.glob(os.path.join(tmp_path, directory, f"{prefix}*{suffix}"))
    assert len(files) == 1
    if output_format == "webdataset":
        assert os.path.basename(files[0]) == "00000.tar"
        with tarfile.open(files[0]) as tar:
            assert tar.getmembers() == []
        assert list(input_readers.read_webdataset(files[0])) == []
    elif output_format == "parquet":
        assert pq.read_table(files[0]).num_rows == 0
    else:
        assert list(input_readers.read_tfrecord(files[0])) == []
    kept = glob.glob(os.path.join(tmp_path, "kept_pairs", "kept-*.parquet"))
    assert len(kept) == 1 and pq.read_table(kept[0]).num_rows == 0
    assert pq.read_schema(kept[0]).names == list(output_formats.KEPT_PAIRS_COLUMNS)


def test_unknown_output_format_is_a_usage_error(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        curate.run(["--input", str(tmp_path / "*.tar"), "--input_format", "webdataset",
                    "--output_dir", str(tmp_path), "--output_format", "tfrecords"])
    assert exit_info.value.code == 2
