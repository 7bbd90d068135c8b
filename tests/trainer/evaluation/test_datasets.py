"""The evaluation/search readers on top of schemas/input_readers.py: curated keys, and damaged
inputs reported as counted, named errors (never a crash, never a silent drop)."""
import hashlib
import json

import pytest

from tests.trainer.evaluation import fixtures_damaged as dmg
from tests.trainer.evaluation import fixtures_data as fd
from trainer.evaluation import cli, datasets, holdout


def _errors(errors):
    return [(e.key, e.error) for e in errors]


def test_webdataset_pairs_are_keyed_by_the_json_key(tmp_path):
    shard = dmg.write_tar(tmp_path / "s.tar",
                          dmg.sample("000000000", fd.png_bytes("red"), "a red square",
                                     {"key": "curated-0", "url": "u0"})
                          + dmg.sample("000000001", fd.png_bytes("blue"), None, {"key": 17, "caption": "from json"})
                          + dmg.sample("plain", fd.png_bytes("green"), " green grass\n", {})
                          + [("latin1.png", fd.png_bytes("white")), ("latin1.txt", b"caf\xe9")])
    pairs = list(datasets.read_webdataset(shard))
    assert [(p.key, p.image_id, p.text) for p in pairs] == [
        ("curated-0", "curated-0", "a red square"), ("17", "17", "from json"),
        ("plain", "plain", "green grass"), ("latin1", "latin1", "caf\ufffd")]  # errors="replace"
    assert pairs[0].meta == {"key": "curated-0", "url": "u0"} and pairs[0].load_image() == fd.png_bytes("red")
    assert [p.key for p in datasets.read_pairs(shard, "webdataset")] == ["curated-0", "17", "plain", "latin1"]
    assert holdout.read_meta(shard)["17"] == {"key": 17, "caption": "from json", "url": ""}


def test_cut_short_tar_and_missing_image_are_named_errors(tmp_path):
    path = str(tmp_path / "cut.tar")
    dmg.write_tar(path, dmg.sample("k0", fd.png_bytes("red"), "red", {})
                  + dmg.sample("k1", None, "failed download", {"status": "failed_to_download"})
                  + dmg.sample("k2", fd.png_bytes("blue"), "blue", {}))
    dmg.cut_inside_member(path, "k2.png")
    errors = []
    assert [p.key for p in datasets.read_pairs(path, "webdataset", errors)] == ["k0"]
    # k1 has no image; k2.png is cut: the file is unreadable from there (k2 is lost with it).
    assert _errors(errors) == [("k1", "missing_image"), (f"{path}#unreadable_file", "unreadable_file")]
    assert errors[1].file == path and path in errors[1].detail


def test_tfrecord_with_a_corrupted_record_loses_only_that_record(tmp_path):
    path = dmg.write_records(tmp_path / "r.tfrecord", [(f"k{i}", fd.jpeg_bytes(c), f"text {i}")
                                                       for i, c in enumerate(("red", "green", "blue", "white"))])
    offset = dmg.corrupt_record(path, 2)
    errors = []
    pairs = list(datasets.read_tfrecord_pairs(path, errors))
    assert [(p.key, p.text) for p in pairs] == [("k0", "text 0"), ("k1", "text 1"), ("k3", "text 3")]
    assert pairs[0].image_id == hashlib.sha256(fd.jpeg_bytes("red")).hexdigest()  # no image/sha256 stored
    assert _errors(errors) == [(f"{path}@{offset}", "corrupt_record")] and errors[0].file == path


def test_image_folder_and_the_decode_check(tmp_path):
    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    (root / "a.png").write_bytes(fd.png_bytes("red"))
    (root / "a.txt").write_text("  a red square \n")
    (root / "b.png").write_bytes(b"not an image")
    (root / "c.jpg").write_bytes(dmg.truncated_jpeg())
    (root / "d.png").write_bytes(dmg.bomb_png())
    (root / "sub" / "e.png").write_bytes(fd.png_bytes("blue"))
    pairs = list(datasets.read_image_folder(str(root)))
    assert [(p.key, p.text) for p in pairs] == [("a.png", "a red square"), ("b.png", ""), ("c.jpg", ""),
                                                ("d.png", ""), ("sub/e.png", "")]
    errors = []
    kept = datasets.decodable_pairs(pairs, errors)
    assert [p.key for p in kept] == ["a.png", "sub/e.png"] and kept[1].load_image() == fd.png_bytes("blue")
    assert _errors(errors) == [("b.png", "not_an_image"), ("c.jpg", "truncated_image"), ("d.png", "decompression_bomb")]
    with pytest.raises(ValueError, match="image folder not found"):
        datasets.read_image_folder(str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="no files match"):
        datasets.read_webdataset(str(tmp_path / "*.tar"))


def test_align_eval_counts_the_pairs_it_leaves_out(standin_export, tmp_path, capsys):
    path = dmg.write_records(tmp_path / "eval.tfrecord", [
        ("k0", fd.jpeg_bytes("red"), "red"), ("k1", fd.jpeg_bytes("red"), "a red thing"),
        ("k2", fd.jpeg_bytes("blue"), "blue"), ("k3", fd.jpeg_bytes("green"), "green"),
        ("k4", b"garbage", "junk"), ("k5", dmg.truncated_jpeg(), "cut")])
    offset = dmg.corrupt_record(path, 3)
    out_json = tmp_path / "r.json"
    assert cli.main(["retrieval", "--model", standin_export, "--tfrecords", path, "--output_json", str(out_json)]) == 0
    err = capsys.readouterr().err
    payload = json.loads(out_json.read_text())
    assert (payload["result"]["num_images"], payload["result"]["num_texts"]) == (2, 3)  # k0 and k1 share the red JPEG
    assert payload["result"]["image_to_text"]["R@1"] == payload["result"]["text_to_image"]["R@1"] == 1.0
    errors = payload["read_errors"]
    assert (errors["count"], errors["by_error"]) == (3, {"corrupt_record": 1, "not_an_image": 1, "truncated_image": 1})
    assert [(e["key"], e["error"]) for e in errors["first"]] == [
        (f"{path}@{offset}", "corrupt_record"), ("k4", "not_an_image"), ("k5", "truncated_image")]
    assert ("align-eval retrieval: warning: 3 input pair(s) unreadable and left out (corrupt_record: 1, "
            "not_an_image: 1, truncated_image: 1)") in err


def test_align_eval_intramodal_over_a_damaged_shard(standin_export, tmp_path, capsys):
    shard = str(tmp_path / "s.tar")
    dmg.write_tar(shard, dmg.sample("000", fd.png_bytes("red"), "x", {"key": "a"})
                  + dmg.sample("001", fd.png_bytes("red"), "y", {"key": "b"})
                  + dmg.sample("002", fd.png_bytes("blue"), "z", {"key": "c"})
                  + dmg.sample("003", b"garbage", "w", {"key": "d"})
                  + dmg.sample("004", fd.png_bytes("white"), "v", {"key": "e"}))
    dmg.cut_inside_member(shard, "004.png")
    annotations = tmp_path / "sis.csv"
    annotations.write_text("a,b,5\na,c,1\n")
    assert cli.main(["intramodal", "--model", standin_export, "--modality", "image", "--pairs", str(annotations),
                     "--data", shard, "--input_format", "webdataset", "--output_json", str(tmp_path / "i.json")]) == 0
    payload = json.loads((tmp_path / "i.json").read_text())
    assert (payload["result"]["num_items"], payload["result"]["num_queries"], payload["result"]["R@1"]) == (3, 2, 1.0)
    assert payload["read_errors"]["by_error"] == {"not_an_image": 1, "unreadable_file": 1}
    assert "warning: 2 input pair(s) unreadable" in capsys.readouterr().err
    annotations.write_text("a,d,5\n")  # d is left out: the task fails, and the warning says why
    assert cli.main(["intramodal", "--model", standin_export, "--modality", "image", "--pairs", str(annotations),
                     "--data", shard, "--input_format", "webdataset", "--output_json", str(tmp_path / "j.json")]) == 2
    err = capsys.readouterr().err
    assert "warning: 2 input pair(s) unreadable and left out (not_an_image: 1, unreadable_file: 1)\n" in err
    assert "1 annotated keys are not in the data" in err


def test_missing_karpathy_image_is_a_named_error(standin_export, tmp_path, capsys):
    data = {"images": [{"filename": "gone.jpg", "cocoid": 1, "split": "test", "sentences": [{"raw": "red"}]}]}
    (tmp_path / "k.json").write_text(json.dumps(data))
    assert cli.main(["retrieval", "--model", standin_export, "--karpathy_json", str(tmp_path / "k.json"),
                     "--image_root", str(tmp_path)]) == 2
    assert f"{tmp_path}/gone.jpg: image_not_found" in capsys.readouterr().err
