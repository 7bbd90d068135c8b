"""Index round trip, resumable build, the three query kinds and bad input."""
import json
import os

import numpy as np
import pytest

from tests.trainer.evaluation import fixtures_damaged as dmg
from tests.trainer.evaluation import fixtures_data as fd
from tests.trainer.search.corpus import red_blue_png, write_corpus
from trainer.evaluation.datasets import read_webdataset
from trainer.evaluation.exported_model import ExportedModel
from trainer.search import cli
from trainer.search.index_store import SearchIndex, SearchIndexError, build_index
from trainer.search.queries import query_embedding


@pytest.fixture(scope="module")
def built(standin_export, tmp_path_factory):
    root = tmp_path_factory.mktemp("search")
    shard = write_corpus(root / "00000.tar")
    index_dir = str(root / "index")
    assert cli.main(["build", "--model", standin_export, "--input", shard, "--input_format", "webdataset",
                     "--index_dir", index_dir, "--chunk_size", "2"]) == 0
    return shard, index_dir


def test_round_trip(built, standin_export):
    shard, index_dir = built
    index = SearchIndex(index_dir)
    assert [item["key"] for item in index.items] == ["k0", "k1", "k2", "k4", "k5"]
    assert index.manifest["count"] == 5 and index.manifest["unreadable_keys"] == ["k3"]
    assert [(u["key"], u["error"]) for u in index.manifest["unreadable"]] == [("k3", "not_an_image")]
    assert index.manifest["unreadable_by_error"] == {"not_an_image": 1}
    model = ExportedModel(standin_export)
    pairs = [p for p in read_webdataset(shard) if p.key != "k3"]
    expected = model.embed_images([p.load_image() for p in pairs])
    np.testing.assert_allclose(np.stack([index.reconstruct(r) for r in range(5)]), expected, atol=1e-6)
    for item in index.items:
        assert os.path.getsize(os.path.join(index_dir, "thumbs", item["thumbnail"])) > 0


def test_three_query_kinds(built, standin_export):
    index, model = SearchIndex(built[1]), ExportedModel(standin_export)
    text_hits = index.search(query_embedding(model, text="red"), k=2)
    # "red" = colour dim 1: the red square scores 1, the half red half blue image 1/sqrt(2).
    assert [(h.key, round(h.score, 4)) for h in text_hits] == [("k0", 1.0), ("k5", 0.7071)]
    image_hits = index.search(query_embedding(model, image=fd.png_bytes("blue")), k=1)
    assert (image_hits[0].key, image_hits[0].text) == ("k2", "blue sea")
    # Figure 1: red image + "blue" -> (red + blue) / sqrt(2): the two-colour image, exactly.
    both = query_embedding(model, text="blue", image=fd.png_bytes("red"))
    np.testing.assert_allclose(both, [0, 1 / np.sqrt(2), 0, 0, 1 / np.sqrt(2)] + [0] * 11, atol=1e-6)
    hit = index.search(both, k=1)[0]
    assert (hit.key, round(hit.score, 4)) == ("k5", 1.0)
    with pytest.raises(ValueError, match="empty query"):
        query_embedding(model, text="  ")


class _Interrupt(Exception):
    pass


def test_resume_skips_finished_chunks(standin_export, tmp_path, built):
    shard = built[0]
    model = ExportedModel(standin_export)
    calls = []

    class Counting:
        def embed_images_skipping(self, images):
            calls.append(len(images))
            return model.embed_images_skipping(images)

    def dying(pairs, after):
        for i, pair in enumerate(pairs):
            if i == after:
                raise _Interrupt()
            yield pair

    settings = {"model": "m", "source": shard, "input_format": "webdataset"}
    with pytest.raises(_Interrupt):
        build_index(Counting(), dying(read_webdataset(shard), 5), str(tmp_path), settings, chunk_size=2, progress=False)
    # chunks 0 and 1 done (k3 of chunk 1 never reaches the model: its thumbnail does not decode);
    # chunk 2 (items 4, 5) was being read when killed
    assert calls == [2, 1]
    with pytest.raises(SearchIndexError, match="incomplete"):
        SearchIndex(str(tmp_path))
    manifest = build_index(Counting(), read_webdataset(shard), str(tmp_path), settings, chunk_size=2, progress=False)
    assert calls == [2, 1, 2] and manifest["count"] == 5
    assert SearchIndex(str(tmp_path)).items == SearchIndex(built[1]).items
    with pytest.raises(SearchIndexError, match="other settings"):
        build_index(Counting(), read_webdataset(shard), str(tmp_path), settings, chunk_size=3, progress=False)


def test_query_cli(built, capsys, tmp_path):
    image = tmp_path / "q.png"
    image.write_bytes(red_blue_png())
    assert cli.main(["query", "--index_dir", built[1], "--image", str(image), "--k", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["key"] == "k5"
    assert cli.main(["query", "--index_dir", built[1], "--text", "green", "--k", "1"]) == 0
    out = capsys.readouterr().out
    assert out.split() == ["1", "1.0000", "k1", "green", "grass"]


def test_bad_input(standin_export, built, tmp_path, capsys):
    assert cli.main(["build", "--model", str(tmp_path / "missing"), "--input", built[0],
                     "--input_format", "webdataset", "--index_dir", str(tmp_path / "i")]) == 2
    assert "model directory not found" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    assert cli.main(["build", "--model", standin_export, "--input", str(empty), "--input_format",
                     "image_folder", "--index_dir", str(tmp_path / "i2")]) == 2
    assert "no readable image to index" in capsys.readouterr().err
    assert cli.main(["query", "--index_dir", str(tmp_path / "nowhere"), "--text", "red"]) == 2
    assert "no search index at" in capsys.readouterr().err
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"garbage")
    assert cli.main(["query", "--index_dir", built[1], "--image", str(broken)]) == 2
    assert "unreadable image" in capsys.readouterr().err


def test_build_keys_by_json_key_and_names_every_unreadable_pair(standin_export, tmp_path, capsys, monkeypatch):
    shard = str(tmp_path / "s.tar")
    dmg.write_tar(shard, dmg.sample("000000000", fd.png_bytes("red"), "a red square", {"key": "curated-red"})
                  + dmg.sample("000000001", dmg.bomb_png(), "bomb", {"key": "curated-bomb"})
                  + dmg.sample("000000002", dmg.truncated_jpeg(), "cut", {"key": "curated-cut"})
                  + dmg.sample("000000003", None, "failed", {"key": "curated-failed", "status": "failed_to_download"})
                  + dmg.sample("000000004", fd.png_bytes("blue"), "blue sea", {"key": "curated-blue"})
                  + dmg.sample("000000005", fd.png_bytes("green"), "green", {"key": "curated-green"}))
    dmg.cut_inside_member(shard, "000000005.png")
    seen = []
    original = ExportedModel.embed_images_skipping

    def recording(self, images):
        seen.extend(images)
        return original(self, images)

    monkeypatch.setattr(ExportedModel, "embed_images_skipping", recording)
    index_dir = str(tmp_path / "index")
    assert cli.main(["build", "--model", standin_export, "--input", shard, "--input_format", "webdataset",
                     "--index_dir", index_dir, "--chunk_size", "2"]) == 0
    index = SearchIndex(index_dir)
    assert [item["key"] for item in index.items] == ["curated-red", "curated-blue"]
    assert seen == [fd.png_bytes("red"), fd.png_bytes("blue")]  # the bomb never reaches tf.io.decode_image
    # chunk 0 = red, bomb; chunk 1 = cut, blue; then the reader's errors: no image (k3), the cut tar
    # (000000005 is lost with it).
    assert [(u["key"], u["error"]) for u in index.manifest["unreadable"]] == [
        ("curated-bomb", "decompression_bomb"), ("curated-cut", "truncated_image"),
        ("curated-failed", "missing_image"), (f"{shard}#unreadable_file", "unreadable_file")]
    assert index.manifest["num_unreadable"] == 4 and index.manifest["unreadable"][3]["file"] == shard
    assert index.manifest["unreadable_by_error"] == {"decompression_bomb": 1, "missing_image": 1,
                                                     "truncated_image": 1, "unreadable_file": 1}
    assert ("align-search build: warning: 4 unreadable input pair(s) left out (decompression_bomb: 1, "
            "missing_image: 1, truncated_image: 1, unreadable_file: 1)") in capsys.readouterr().err


def test_build_over_tfrecords_with_a_corrupted_record(standin_export, tmp_path, capsys):
    path = dmg.write_records(tmp_path / "r.tfrecord", [("k0", fd.jpeg_bytes("red"), "red"),
                                                       ("k1", fd.jpeg_bytes("green"), "green"),
                                                       ("k2", fd.jpeg_bytes("blue"), "blue"),
                                                       ("k3", b"garbage", "junk")])
    offset = dmg.corrupt_record(path, 1)
    index_dir = str(tmp_path / "index")
    assert cli.main(["build", "--model", standin_export, "--input", path, "--input_format", "tfrecord",
                     "--index_dir", index_dir]) == 0
    index = SearchIndex(index_dir)
    assert [(item["key"], item["text"]) for item in index.items] == [("k0", "red"), ("k2", "blue")]
    assert [(u["key"], u["error"]) for u in index.manifest["unreadable"]] == [
        ("k3", "not_an_image"), (f"{path}@{offset}", "corrupt_record")]
    err = capsys.readouterr().err
    assert "warning: 2 unreadable input pair(s) left out (corrupt_record: 1, not_an_image: 1)" in err
