"""schemas/input_readers.py on well-formed inputs: webdataset, parquet, TSV; every pair comes out."""
import json

import pyarrow as pa
import pyarrow.parquet as pq

from schemas import input_files
from schemas import input_readers as readers
from tests.pipeline import image_factory as f
from tests.pipeline.hostile_corpus import write_tar

PNG = f.rgb(8, 8)



def test_webdataset_groups_members_by_key_and_keeps_incomplete_samples(tmp_path):
    meta = json.dumps({"key": "000", "url": "http://a/0.png", "punsafe": 0.9}).encode()
    write_tar(tmp_path / "00000.tar", [
        ("000.png", PNG), ("000.txt", b"a red bus"), ("000.json", meta),
        ("001.jpg", PNG), ("001.json", b'{"caption": "from json"}'),  # no .txt: json caption
        ("002.txt", b"text without image"),
        ("003.webp", PNG),  # neither text nor caption
    ])
    pairs = list(readers.read_webdataset(str(tmp_path / "00000.tar"), score_field="punsafe"))
    assert [(p["key"], p["url"], p["text"], p["image"] is not None, p["unsafe_score"])
            for p in pairs] == [
        ("000", "http://a/0.png", b"a red bus", True, 0.9),
        ("001", "", b"from json", True, None),
        ("002", "", b"text without image", False, None),
        ("003", "", None, True, None),
    ]


def test_truncated_tar_yields_what_it_read_and_an_unreadable_file_error(tmp_path):
    write_tar(tmp_path / "t.tar", [("000.png", PNG), ("000.txt", b"x y z"),
                                   ("001.png", f.noisy_png(64, 64))])
    data = (tmp_path / "t.tar").read_bytes()
    (tmp_path / "t.tar").write_bytes(data[:1800])
    pairs = list(readers.read_webdataset(str(tmp_path / "t.tar")))
    assert pairs[0]["key"] == "000" and pairs[0]["text"] == b"x y z"
    assert pairs[-1]["read_error"] == readers.UNREADABLE_FILE


def test_tsv_resolves_relative_paths_and_names_missing_and_remote_images(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(PNG)
    (tmp_path / "captions.tsv").write_bytes(
        b"a red bus\timages/a.png\n"
        b"gone\timages/missing.png\n"
        b"remote\thttp://example.com/x.jpg\n"
        b"caf\xe9\timages/a.png\n")
    pairs = [readers.load_image(p) for p in readers.read_tsv(str(tmp_path / "captions.tsv"))]
    assert [(p["key"], p["text"], p["image"] == PNG, p["read_error"]) for p in pairs] == [
        ("captions.tsv-000000000", b"a red bus", True, None),
        ("captions.tsv-000000001", b"gone", False, input_files.IMAGE_NOT_FOUND),
        ("captions.tsv-000000002", b"remote", False, input_files.REMOTE_IMAGE_NOT_DOWNLOADED),
        ("captions.tsv-000000003", b"caf\xe9", True, None),  # bytes kept: records.py judges UTF-8
    ]


def test_tsv_with_header_names_columns(tmp_path):
    (tmp_path / "a.png").write_bytes(PNG)
    (tmp_path / "x.tsv").write_bytes(b"url\tcaption\tpunsafe\na.png\thello there you\t0.25\n")
    (only,) = [readers.load_image(p)
               for p in readers.read_tsv(str(tmp_path / "x.tsv"), score_field="punsafe")]
    assert (only["text"], only["image"], only["unsafe_score"]) == (b"hello there you", PNG, 0.25)


def test_parquet_with_image_bytes_column(tmp_path):
    table = pa.table({"key": ["k0", "k1"], "url": ["u0", "u1"], "caption": ["a b c", None],
                      "jpg": [PNG, None], "punsafe": [0.1, None]})
    pq.write_table(table, tmp_path / "0.parquet")
    pairs = list(readers.read_parquet(str(tmp_path / "0.parquet"), score_field="punsafe"))
    assert [(p["key"], p["url"], p["text"], p["image"], p["unsafe_score"]) for p in pairs] == [
        ("k0", "u0", b"a b c", PNG, 0.1), ("k1", "u1", None, None, None)]
