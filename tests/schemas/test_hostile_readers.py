"""schemas/ readers and decoder on hostile bytes: each case's exact fate, never an exception."""
import gzip
import io
import os
import struct
import tarfile
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from schemas import image_decode, input_files, input_readers, tar_members, tfrecord_reader
from schemas.example_wire import serialize_example
from tests.pipeline import image_factory as f
from tests.pipeline.hostile_corpus import pair_members, tar_bytes

PNG = f.rgb(8, 8)


def entries(data: bytes):
    got, error = [], None
    try:
        for entry in tar_members.iter_tar_files(io.BytesIO(data)):
            got.append(entry.name)
    except tar_members.DamagedArchiveError as damaged:
        error = str(damaged)
    return got, error


def test_a_whole_tar_reads_to_its_end_marker():
    assert entries(tar_bytes(pair_members("a", 1))) == (["a.png", "a.txt"], None)


def test_an_empty_archive_is_whole_not_damaged():
    # Only the end-of-archive marker (what tarfile and `tar cf x.tar -T /dev/null` write, and an
    # empty shard of align-curate --output_format webdataset): tarfile.open itself reads it.
    assert entries(tar_bytes([])) == ([], None)
    assert entries(b"")[1] is not None  # a zero-byte file is no archive


@pytest.mark.parametrize("cut,why", [
    ("boundary", "without an end-of-archive marker"),
    ("header", "inside a header"),
    ("data", "unexpected end of data"),
])
def test_a_tar_cut_short_is_damaged_after_the_members_before_the_cut(cut, why):
    data = tar_bytes(pair_members("a", 1) + pair_members("b", 2), fmt=tarfile.USTAR_FORMAT)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        second = next(m for m in tar.getmembers() if m.name == "b.png").offset
    end = {"boundary": second, "header": second + 100, "data": second + 600}[cut]
    got, error = entries(data[:end])
    assert got == ["a.png", "a.txt"] and why in error


def test_a_bad_header_checksum_and_corrupt_gzip_are_damage_not_an_end():
    data = bytearray(tar_bytes(pair_members("a", 1), fmt=tarfile.USTAR_FORMAT))
    data[0] ^= 0x20  # the first header's name: its checksum fails
    got, error = entries(bytes(data))
    assert got == [] and "bad checksum" in error  # at byte 0 tarfile itself raises
    data = bytearray(tar_bytes(pair_members("a", 1) + pair_members("b", 2), fmt=tarfile.USTAR_FORMAT))
    with tarfile.open(fileobj=io.BytesIO(bytes(data))) as tar:
        data[next(m for m in tar.getmembers() if m.name == "b.png").offset] ^= 0x20
    got, error = entries(bytes(data))
    assert got == ["a.png", "a.txt"] and "invalid header at byte" in error
    zipped = bytearray(gzip.compress(tar_bytes(pair_members("a", 1) + pair_members("b", 2))))
    for i in range(len(zipped) // 2, len(zipped) // 2 + 8):
        zipped[i] ^= 0x5A
    assert entries(bytes(zipped))[1] is not None


def test_oversized_members_are_not_read():
    data = tar_bytes([("a.png", b"x" * 5000), ("a.txt", b"hi")])
    got = list(tar_members.iter_tar_files(io.BytesIO(data), max_member_bytes=4999))
    assert [(e.name, e.size, e.data) for e in got] == [("a.png", 5000, None), ("a.txt", 2, b"hi")]


def test_sanitize_text_makes_any_str_encodable():
    assert tar_members.sanitize_text("caf\udce9") == "caf\\xe9"  # tarfile's surrogateescape
    assert tar_members.sanitize_text("k\ud800") == "k\\ud800"  # a JSON lone surrogate
    assert tar_members.sanitize_text("fine é") == "fine é"


def records_file(*payloads) -> bytes:
    out = b""
    for data in payloads:
        length = struct.pack("<Q", len(data))
        out += (length + struct.pack("<I", tfrecord_reader._masked_crc(length)) + data
                + struct.pack("<I", tfrecord_reader._masked_crc(data)))
    return out


def test_tfrecord_reader_skips_one_corrupt_record_and_stops_at_broken_framing():
    example = serialize_example(image_jpeg=PNG, height=8, width=8, text="a b c", raw_text="a b c",
                                key="k1", url="u")
    data = bytearray(records_file(example, example, b"not an example \xff"))
    second = 12 + len(example) + 4
    data[second + 12 + 5] ^= 1  # inside the second record's payload
    got = list(tfrecord_reader.iter_records(io.BytesIO(bytes(data))))
    assert got[0] == example and got[1] == tfrecord_reader.CorruptRecord(
        second, f"corrupted record at byte {second} (data CRC)")
    with pytest.raises(tfrecord_reader.DamagedRecordFileError, match="inside the record"):
        list(tfrecord_reader.iter_records(io.BytesIO(bytes(data[:-3]))))
    assert tfrecord_reader.parse_example(example)["key"] == [b"k1"]
    with pytest.raises(ValueError):
        tfrecord_reader.parse_example(b"\x0a\xff\xff\xff")


def test_tfrecord_pairs_name_corrupt_and_malformed_records(tmp_path):
    example = serialize_example(image_jpeg=PNG, height=8, width=8, text="a b c", raw_text="a b c",
                                key="k1", url="u")
    data = bytearray(records_file(example, example, b"\x0a\x05junk"))
    data[12 + len(example) + 4 + 12 + 5] ^= 1
    (tmp_path / "x.tfrecord").write_bytes(bytes(data))
    path = str(tmp_path / "x.tfrecord")
    pairs = list(input_readers.read_tfrecord(path))
    second = 12 + len(example) + 4
    assert [(p["key"], p["read_error"]) for p in pairs] == [
        ("k1", None), (f"{path}@{second}", "corrupt_record"), (f"{path}#2", "malformed_example")]
    gz = str(tmp_path / "y.tfrecord.gz")
    (tmp_path / "y.tfrecord.gz").write_bytes(gzip.compress(records_file(example))[:-6])  # no trailer
    assert [(p["key"], p["read_error"]) for p in input_readers.read_tfrecord(gz)] == [
        ("k1", None), (f"{gz}#unreadable_file", "unreadable_file")]


def test_named_image_paths_never_block_or_exhaust_memory(tmp_path):
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    (tmp_path / "big.png").write_bytes(b"x" * 101)
    (tmp_path / "ok.png").write_bytes(PNG)
    read = input_files.read_image_path
    assert read("/dev/zero") == (None, input_files.IMAGE_NOT_A_FILE)
    assert read(str(fifo)) == (None, input_files.IMAGE_NOT_A_FILE)
    assert read(str(tmp_path)) == (None, input_files.IMAGE_NOT_A_FILE)
    assert read(str(tmp_path / "big.png"), max_bytes=100) == (None, input_files.IMAGE_FILE_TOO_LARGE)
    assert read(str(tmp_path / "nope.png")) == (None, input_files.IMAGE_NOT_FOUND)
    assert read(str(tmp_path / "ok.png")) == (PNG, None)
    for url in ("HTTP://a/b.jpg", "https://a", "ftp://a/b", "FILE:///etc/passwd", "data:image/png;base64,x"):
        assert read(url) == (None, input_files.REMOTE_IMAGE_NOT_DOWNLOADED), url


def test_object_store_reads_are_bounded_in_time(monkeypatch):
    class Slow(io.BytesIO):
        def read(self, *args):
            time.sleep(5)
            return b""

    monkeypatch.setattr(input_files, "open_file", lambda path: Slow())
    assert input_files.read_image_path("gs://bucket/slow.png", timeout_s=0.2) == (
        None, input_files.IMAGE_READ_TIMEOUT)


def test_input_root_and_relative_keys():
    assert input_files.input_root("gs://b/data/*/part-*.tsv") == "gs://b/data/"
    assert input_files.input_root("shards/x.tsv") == "shards/"
    assert input_files.relative_to_root("gs://b/data/a/shard.0.tsv", "gs://b/data/") == "a/shard.0.tsv"
    assert input_files.scheme_of("C:/x.png") is None and input_files.scheme_of("gs://b") == "gs"


def test_parquet_struct_images_and_binary_keys(tmp_path):
    images = pa.array([{"bytes": PNG, "path": None}, {"bytes": None, "path": "x.png"}],
                      pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
    pq.write_table(pa.table({"key": [b"a\xff", b"b"], "caption": ["one two three", "x y z"],
                             "image": images}), tmp_path / "s.parquet")
    pairs = list(input_readers.read_parquet(str(tmp_path / "s.parquet")))
    assert [(p["key"], p["image"]) for p in pairs] == [("a\\xff", PNG), ("b", b"x.png")]


def test_decode_rgb_composites_alpha_on_white_and_caps_pixels():
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    out = io.BytesIO()
    rgba.save(out, "PNG")
    assert image_decode.decode_rgb(out.getvalue()).getpixel((0, 0)) == (255, 255, 255)
    with pytest.raises(image_decode.ImageDecodeError) as error:
        image_decode.decode_rgb(f.bomb_png_header(20_000, 20_000))
    assert error.value.name == image_decode.DECOMPRESSION_BOMB
    assert image_decode.thumbnail_jpeg(b"not an image") is None


def test_model_input_bytes_passes_plain_images_and_normalizes_the_rest():
    jpeg = f.rgb(16, 16, fmt="JPEG")
    assert image_decode.model_input_bytes(jpeg) == jpeg
    rotated = image_decode.model_input_bytes(f.exif_rotated_jpeg(40, 30))
    assert Image.open(io.BytesIO(rotated)).size == (30, 40)  # EXIF applied before the model
    alpha = image_decode.model_input_bytes(f.palette_alpha_png(8, 8))
    assert Image.open(io.BytesIO(alpha)).mode == "RGB"
    with pytest.raises(image_decode.ImageDecodeError):
        image_decode.model_input_bytes(f.truncated(f.noisy_png(64, 64)))
