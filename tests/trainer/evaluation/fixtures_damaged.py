"""Damaged inputs for the read-error tests of evaluation and search: webdataset shards with chosen
members (json keys, missing images), tars cut short, TFRecords with a corrupted record, images
that do not decode (garbage, truncated, a decompression bomb)."""
import io
import json
import struct
import tarfile
import zlib

from PIL import Image

from schemas.example_wire import serialize_example


def write_tar(path, members) -> str:
    """members: (name, bytes) in order, as one webdataset shard."""
    with tarfile.open(str(path), "w") as tar:
        for name, payload in members:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return str(path)


def sample(stem, image=None, text=None, meta=None):
    """The members of one webdataset sample; None parts are left out."""
    members = [] if image is None else [(f"{stem}.png", image)]
    members += [] if text is None else [(f"{stem}.txt", text.encode())]
    return members + ([] if meta is None else [(f"{stem}.json", json.dumps(meta).encode())])


def cut_inside_member(path, member_name, keep_bytes=10) -> None:
    """Truncates the tar `keep_bytes` into the data of `member_name` (as a killed download)."""
    with tarfile.open(str(path)) as tar:
        offset = tar.getmember(member_name).offset_data
    with open(path, "r+b") as f:
        f.truncate(offset + keep_bytes)


def write_records(path, records) -> str:
    """records: (key, image bytes, text) as curated tf.train.Examples, TFRecord framing by TF."""
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(path)) as writer:
        for key, image, text in records:
            writer.write(serialize_example(image_jpeg=image, height=10, width=12, text=text,
                                           raw_text=text, key=key))
    return str(path)


def corrupt_record(path, index) -> int:
    """Flips one byte in the middle of record `index`'s data (its data CRC then fails; the
    framing stays intact). Returns the record's byte offset."""
    data = bytearray(open(path, "rb").read())
    offset = 0
    for _ in range(index):
        (length,) = struct.unpack("<Q", data[offset:offset + 8])
        offset += 12 + length + 4
    (length,) = struct.unpack("<Q", data[offset:offset + 8])
    data[offset + 12 + length // 2] ^= 0xFF
    open(path, "wb").write(bytes(data))
    return offset


def truncated_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.effect_noise((64, 48), 50).convert("RGB").save(buf, "JPEG")
    return buf.getvalue()[: len(buf.getvalue()) // 2]


def bomb_png(side=20000) -> bytes:
    """A PNG whose header announces side x side pixels (far over the pixel cap) in a few bytes:
    whatever decodes it without a cap allocates side * side * 3 bytes."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))
