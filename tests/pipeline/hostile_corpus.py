"""Hostile input files in the three curation formats, each with the exact fate it must meet.

Every builder writes files under a directory and returns {expected key: (status, reason)} for
every pair the files hold, so a test can check one outcome per input pair, exactly. Keys of
`unreadable_file` pairs are "{path}#unreadable_file" (schemas/input_readers.py).
"""
import gzip
import io
import json
import os
import tarfile

import pyarrow as pa
import pyarrow.parquet as pq

from tests.pipeline import image_factory as f

KEPT = ("kept", None)
MAX_IMAGE_BYTES = 1_000_000  # the test runs with --max_image_bytes 1000000


def unreadable(path) -> tuple:
    return f"{path}#unreadable_file", ("error", "unreadable_file")


def image(seed: int) -> bytes:
    """A 300x300 PNG, different per seed (so no two pairs share an image)."""
    return f.rgb(300, 300, color=(seed * 37 % 256, seed * 91 % 256, seed * 53 % 256))


def caption(seed: int) -> bytes:
    return f"a drawing of thing number {seed} here".encode()


def tar_bytes(members, fmt=tarfile.PAX_FORMAT, encoding="utf-8", pax_headers=None) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt, encoding=encoding,
                      pax_headers=pax_headers) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def write_tar(path, members) -> None:
    with open(path, "wb") as handle:
        handle.write(tar_bytes(members))


def pair_members(key: str, seed: int, meta=None):
    members = [(f"{key}.png", image(seed)), (f"{key}.txt", caption(seed))]
    return members + ([(f"{key}.json", json.dumps(meta).encode())] if meta else [])


def write_webdataset(root: str) -> dict:
    expected = {}
    put = lambda name, data: open(os.path.join(root, name), "wb").write(data)  # noqa: E731
    put("good.tar", tar_bytes(pair_members("g0", 0) + pair_members("g1", 1)))
    expected.update({"g0": KEPT, "g1": KEPT})
    # A JSON-escaped lone surrogate in the caption, the key and the url (scraped alt-text has them).
    put("surrogate.tar", tar_bytes([
        ("s0.png", image(2)),
        ("s0.json", b'{"key": "k\\ud800", "url": "http://x/\\udc00", "caption": "a \\ud83d b c"}'),
        ("s1.png", image(3)), ("s1.json", b'{"key": "line\\u2028break", "caption": "one two three"}'),
    ]))
    expected.update({"k\\ud800": ("error", "invalid_utf8_text"), "line\u2028break": KEPT})
    # Member names that are not UTF-8 (latin-1 bytes): a sanitized key, the pair read normally.
    put("latin1.tar", tar_bytes([("caf\xe9.png", image(4)), ("caf\xe9.txt", caption(4))],
                                fmt=tarfile.GNU_FORMAT, encoding="latin-1"))
    expected["caf\\xe9"] = KEPT
    # A malformed pax header: tarfile raises ValueError.
    put("pax.tar", tar_bytes(pair_members("p0", 5),
                             pax_headers={"GNU.sparse.map": "garbage", "GNU.sparse.size": "x"}))
    expected.update([unreadable(os.path.join(root, "pax.tar"))])
    # A bad header checksum mid-archive: the first pair, then unreadable_file (tarfile is quiet).
    data = bytearray(tar_bytes(pair_members("c0", 6) + pair_members("c1", 7), fmt=tarfile.USTAR_FORMAT))
    second_header = _offset_of_member(bytes(data), "c0.txt")
    data[second_header + 100] ^= 0xFF  # inside the mode field: the checksum no longer matches
    put("checksum.tar", bytes(data))
    expected.update({"c0": ("error", "missing_text")})  # its .txt header is the damaged one
    expected.update([unreadable(os.path.join(root, "checksum.tar"))])
    # Cut exactly at a member boundary (no end-of-archive marker): pair m0, then unreadable_file.
    whole = tar_bytes(pair_members("m0", 8) + pair_members("m1", 9), fmt=tarfile.USTAR_FORMAT)
    put("cut.tar", whole[:_offset_of_member(whole, "m1.png")])
    expected.update({"m0": KEPT})
    expected.update([unreadable(os.path.join(root, "cut.tar"))])
    # A gzip-compressed tar whose compressed bytes are damaged (named .tar: r|* detects gzip).
    zipped = bytearray(gzip.compress(tar_bytes(pair_members("z0", 10) + pair_members("z1", 11))))
    for i in range(len(zipped) // 2, len(zipped) // 2 + 16):
        zipped[i] ^= 0x5A
    put("damaged_gzip.tar", bytes(zipped))
    expected.update([unreadable(os.path.join(root, "damaged_gzip.tar"))])
    # A caption over --max_caption_bytes (65536): named error, never normalized.
    put("long.tar", tar_bytes([("l0.png", image(12)), ("l0.txt", b"<!--" * 20000)]))
    expected["l0"] = ("error", "caption_too_long")
    return expected


def _offset_of_member(data: bytes, name: str) -> int:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return next(m.offset for m in tar.getmembers() if m.name == name)


def write_tsv(root: str) -> dict:
    """Two shards named shard.0.tsv / shard.1.tsv (default keys must not collide), hostile
    image paths, a valid and a truncated .tsv.gz."""
    os.makedirs(os.path.join(root, "images"))
    for seed in range(4):
        open(os.path.join(root, "images", f"{seed}.png"), "wb").write(image(seed))
    fifo = os.path.join(root, "images", "fifo.png")
    os.mkfifo(fifo)
    open(os.path.join(root, "images", "big.png"), "wb").write(b"\0" * (MAX_IMAGE_BYTES + 1))
    lines = [caption(0) + b"\timages/0.png", caption(1) + b"\timages/1.png"]
    open(os.path.join(root, "shard.0.tsv"), "wb").write(b"\n".join(lines) + b"\n")
    open(os.path.join(root, "shard.1.tsv"), "wb").write(b"\n".join([
        caption(2) + b"\timages/2.png",
        b"reads forever from a device\t/dev/zero",
        b"blocks forever on a pipe\timages/fifo.png",
        b"upper case scheme here\tHTTP://example.com/a.jpg",
        b"an ftp url here\tftp://example.com/a.jpg",
        b"a file url here\tfile:///etc/passwd",
        b"a huge image file\timages/big.png",
    ]) + b"\n")
    expected = {"shard.0.tsv-000000000": KEPT, "shard.0.tsv-000000001": KEPT,
                "shard.1.tsv-000000000": KEPT,
                "shard.1.tsv-000000001": ("error", "image_not_a_file"),
                "shard.1.tsv-000000002": ("error", "image_not_a_file"),
                "shard.1.tsv-000000003": ("error", "remote_image_not_downloaded"),
                "shard.1.tsv-000000004": ("error", "remote_image_not_downloaded"),
                "shard.1.tsv-000000005": ("error", "remote_image_not_downloaded"),
                "shard.1.tsv-000000006": ("error", "image_file_too_large")}
    open(os.path.join(root, "valid.tsv.gz"), "wb").write(
        gzip.compress(caption(3) + b"\timages/3.png\n"))
    expected["valid.tsv.gz-000000000"] = KEPT
    many = b"".join(b"text %d %d x\tnope/%d.png\n" % (i, i * 7919 % 104729, i) for i in range(4000))
    zipped = gzip.compress(many)
    open(os.path.join(root, "cut.tsv.gz"), "wb").write(zipped[:len(zipped) // 2])
    # Its lines before the cut name missing images (image_not_found); how many precede the cut
    # depends on zlib, so the test checks them by prefix.
    expected.update([unreadable(os.path.join(root, "cut.tsv.gz"))])
    return expected


def write_parquet(root: str) -> dict:
    good = pa.table({"key": ["q0", "q1"], "caption": [caption(0).decode(), caption(1).decode()],
                     "jpg": [image(0), image(1)]})
    pq.write_table(good, os.path.join(root, "good.parquet"))
    whole = open(os.path.join(root, "good.parquet"), "rb").read()
    open(os.path.join(root, "truncated.parquet"), "wb").write(whole[:len(whole) // 2])
    open(os.path.join(root, "garbage.parquet"), "wb").write(b"not a parquet file " * 50)
    # A string caption column holding invalid UTF-8, and an image column typed string.
    bad_text = pa.array([b"bad \xff text here", caption(2)], pa.binary()).view(pa.string())
    pq.write_table(pa.table({"key": ["u0", "u1"], "caption": bad_text, "jpg": [image(3), image(2)]}),
                   os.path.join(root, "utf8.parquet"))
    pq.write_table(pa.table({"key": ["t0"], "caption": [caption(4).decode()],
                             "jpg": ["not bytes but a string"]}),
                   os.path.join(root, "string_image.parquet"))
    expected = {"q0": KEPT, "q1": KEPT, "u0": ("error", "invalid_utf8_text"), "u1": KEPT,
                "t0": ("error", "not_an_image")}
    expected.update([unreadable(os.path.join(root, "truncated.parquet")),
                     unreadable(os.path.join(root, "garbage.parquet"))])
    return expected
