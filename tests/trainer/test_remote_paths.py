"""gs:// everywhere, tested on TensorFlow's in-memory `ram://` file system (no network, no mock).

Every input and output of align-eval (the export, TFRecords, webdataset tars, Karpathy JSON and
its images, class folders, annotation files, the JSON results, the holdout split) and of
align-search (the export, the corpus, the index directory, the query image, the thumbnails the
server sends) lives under ram://; each test runs in an empty working directory and checks it is
still empty afterwards (the old bug: `--model gs://b/run/export` wrote `./gs:/b/run/eval/`).

ram:// is a file system TensorFlow registers in-process, reached through tf.io.gfile exactly as
gs:// is; Beam has no file system for it, so schemas/input_files.py falls back to gfile, as it
does for gs:// where apache-beam[gcp] is not installed. SavedModel save and load both work on
ram:// (TensorFlow 2.21).
"""
import json
import os
import threading
import urllib.error
import urllib.request
import uuid

import numpy as np
import pytest
import tensorflow as tf

from tests.trainer.evaluation import fixtures_data as fd
from tests.trainer.evaluation.standin_model import save_standin_export
from tests.trainer.search.corpus import write_corpus

gfile = tf.io.gfile


@pytest.fixture
def ram():
    """A fresh ram:// root, deleted after the test."""
    root = f"ram://align-test-{uuid.uuid4().hex[:12]}"
    gfile.makedirs(root)
    yield root
    try:
        gfile.rmtree(root)  # only frees memory: ram:// lives as long as the process
    except tf.errors.NotFoundError:  # ram:// cannot always delete a tree with implicit folders
        pass


@pytest.fixture
def empty_cwd(tmp_path, monkeypatch):
    """Runs the test in an empty directory and asserts nothing was written there."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    yield cwd
    assert sorted(os.listdir(cwd)) == []


def put(path: str, data: bytes) -> str:
    gfile.makedirs(path.rsplit("/", 1)[0])
    with gfile.GFile(path, "wb") as f:
        f.write(data)
    return path


def get_json(path: str) -> dict:
    with gfile.GFile(path, "rb") as f:
        return json.loads(f.read().decode("utf-8"))


@pytest.fixture
def export(ram):
    return save_standin_export(f"{ram}/run/export")


def eval_main(capsys, *argv):
    from trainer.evaluation import cli

    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_align_eval_reads_and_writes_everything_under_ram(ram, export, empty_cwd, capsys):
    records = fd.write_tfrecords(f"{ram}/data/eval.tfrecord", [
        ("k0", "red", "red"), ("k1", "blue", "blue"), ("k2", "green", "green")])
    out = eval_main(capsys, "retrieval", "--model", export, "--tfrecords", f"{ram}/data/*.tfrecord")
    default = f"{ram}/run/eval/retrieval.json"  # WORKDIR/eval/TASK.json, on the export's file system
    assert f"wrote {default}" in out
    result = get_json(default)
    assert result["model"] == export and result["result"]["image_to_text"]["R@1"] == 1.0
    assert records.startswith("ram://")

    # Karpathy split: the JSON and the images (image_root/filepath/filename) both under ram://.
    for colour in ("red", "blue"):
        put(f"{ram}/coco/val2014/{colour}.jpg", fd.jpeg_bytes(colour))
    put(f"{ram}/coco/dataset_coco.json", json.dumps({"images": [
        {"filepath": "val2014", "filename": f"{c}.jpg", "cocoid": i, "split": "test",
         "sentences": [{"raw": c, "tokens": [c]}]} for i, c in enumerate(("red", "blue"))]}).encode())
    eval_main(capsys, "retrieval", "--model", export, "--karpathy_json", f"{ram}/coco/dataset_coco.json",
              "--image_root", f"{ram}/coco", "--output_json", f"{ram}/out/karpathy.json")
    result = get_json(f"{ram}/out/karpathy.json")["result"]
    assert (result["num_images"], result["num_texts"], result["text_to_image"]["R@1"]) == (2, 2, 1.0)

    # Class folders (zero-shot with a class-names file, k-NN, linear probe).
    for split_name, per_class in (("train", 2), ("test", 1)):
        for colour in ("red", "green", "blue"):
            for i in range(per_class):
                put(f"{ram}/classes/{split_name}/{colour}/{i}.png", fd.png_bytes(colour))
    put(f"{ram}/classes/names.txt", b"blue\ngreen\nred\n")
    eval_main(capsys, "zeroshot", "--model", export, "--class_folder", f"{ram}/classes/test",
              "--class_names", f"{ram}/classes/names.txt", "--prompt_ensembling", "off")
    assert get_json(f"{ram}/run/eval/zeroshot.json")["result"]["single_template"]["top1"] == 1.0
    eval_main(capsys, "knn", "--model", export, "--train_folder", f"{ram}/classes/train",
              "--eval_folder", f"{ram}/classes/test", "--ks", "1", "--vote_k", "2")
    assert get_json(f"{ram}/run/eval/knn.json")["result"]["R@1"] == 1.0
    eval_main(capsys, "linear-probe", "--model", export, "--train_folder", f"{ram}/classes/train",
              "--eval_folder", f"{ram}/classes/test")
    assert get_json(f"{ram}/run/eval/linear-probe.json")["result"]["top1"] == 1.0

    # Annotation files, an image folder (walked recursively) and a webdataset tar.
    put(f"{ram}/ann/simlex.txt", b"word1\tword2\tSimLex999\nred\tred\t10\nred\tblue\t1\nblue\tblue\t9\n")
    eval_main(capsys, "word-similarity", "--model", export, "--pairs", f"{ram}/ann/simlex.txt")
    assert "spearman_rho" in get_json(f"{ram}/run/eval/word-similarity.json")["result"]
    for name, colour in (("a", "red"), ("sub/b", "red"), ("c", "blue"), ("sub/deeper/d", "white")):
        put(f"{ram}/images/{name}.png", fd.png_bytes(colour))
    put(f"{ram}/ann/sis.csv", b"a.png,sub/b.png,5\nc.png,sub/deeper/d.png,4\n")
    eval_main(capsys, "intramodal", "--model", export, "--modality", "image", "--pairs", f"{ram}/ann/sis.csv",
              "--data", f"{ram}/images", "--input_format", "image_folder", "--ks", "1,3",
              "--output_json", f"{ram}/out/intramodal.json")
    result = get_json(f"{ram}/out/intramodal.json")["result"]
    assert (result["num_queries"], result["R@1"], result["R@3"]) == (4, 0.5, 1.0)
    local_tar = write_corpus(empty_cwd.parent / "corpus.tar")  # written locally, outside the cwd
    gfile.copy(local_tar, f"{ram}/shards/00000.tar")
    put(f"{ram}/ann/texts.csv", b"k0,k5,5\n")
    out = eval_main(capsys, "intramodal", "--model", export, "--modality", "text", "--pairs",
                    f"{ram}/ann/texts.csv", "--data", f"{ram}/shards/*.tar", "--input_format", "webdataset",
                    "--output_json", f"{ram}/out/texts.json")
    assert get_json(f"{ram}/out/texts.json")["result"]["num_queries"] == 2  # k0 <-> k5 (6 texts read)


def test_holdout_split_writes_under_ram(ram, empty_cwd, capsys):
    from trainer.evaluation import holdout

    fd.write_tfrecords(f"{ram}/in/train.tfrecord", [(f"k{i}", "red", "red") for i in range(20)])
    shard = write_corpus(empty_cwd.parent / "meta.tar")
    gfile.copy(shard, f"{ram}/meta/00000.tar")
    assert sorted(holdout.read_meta(f"{ram}/meta/*.tar")) == ["k0", "k1", "k2", "k3", "k4", "k5"]
    meta = {f"k{i}": {"colour": "red"} for i in range(20)}
    summary = holdout.split(f"{ram}/in/*.tfrecord", f"{ram}/split", 50, meta, class_field="colour",
                            num_train_shards=2, train_classes=True)
    assert summary["train"] + summary["heldout"] == 20
    assert get_json(f"{ram}/split/split.json")["heldout"] == summary["heldout"]
    assert len(gfile.glob(f"{ram}/split/*.tfrecord")) == 3
    written = gfile.glob(f"{ram}/split/*_classes/red/*.jpg")
    assert len(written) == 20


def test_finetune_finds_the_base_workdir_of_a_remote_export(ram, export, empty_cwd):
    from trainer.evaluation.finetune import base_workdir_of

    with pytest.raises(ValueError, match=f"{ram}/run has no config.json"):
        base_workdir_of(export)
    put(f"{ram}/run/config.json", b"{}")
    assert base_workdir_of(export + "/") == f"{ram}/run"


def test_align_search_build_query_and_serve_under_ram(ram, export, empty_cwd, capsys):
    from trainer.evaluation.exported_model import ExportedModel
    from trainer.search import cli
    from trainer.search.index_store import SearchIndex
    from trainer.search.server import make_server

    local_tar = write_corpus(empty_cwd.parent / "corpus.tar")
    gfile.copy(local_tar, f"{ram}/shards/00000.tar")
    index_dir = f"{ram}/index"
    build = ["build", "--model", export, "--input", f"{ram}/shards/*.tar", "--input_format",
             "webdataset", "--index_dir", index_dir, "--chunk_size", "2"]
    assert cli.main(build) == 0
    for name in ("manifest.json", "index.faiss", "items.jsonl", "chunks/000000.json",
                 "chunks/000000.npz", "thumbs/000000/0.jpg"):
        assert gfile.exists(f"{index_dir}/{name}"), name
    manifest = get_json(f"{index_dir}/manifest.json")
    assert manifest["model"] == export  # recorded as given, not os.path.abspath("ram://...")
    assert (manifest["count"], manifest["unreadable_keys"]) == (5, ["k3"])
    assert cli.main(build) == 0  # resumed: every chunk is done, the index is merged again
    assert cli.main(build + ["--overwrite"]) == 0
    capsys.readouterr()

    put(f"{ram}/queries/blue.png", fd.png_bytes("blue"))
    assert cli.main(["query", "--index_dir", index_dir, "--image", f"{ram}/queries/blue.png",
                     "--k", "1", "--json"]) == 0  # the model recorded in the manifest, on ram://
    hits = json.loads(capsys.readouterr().out)
    assert (hits[0]["key"], hits[0]["text"]) == ("k2", "blue sea")
    assert cli.main(["query", "--index_dir", index_dir, "--text", "red", "--k", "2", "--json"]) == 0
    assert [h["key"] for h in json.loads(capsys.readouterr().out)] == ["k0", "k5"]

    index = SearchIndex(index_dir)
    np.testing.assert_allclose(np.linalg.norm(index.reconstruct(0)), 1.0, atol=1e-6)
    server = make_server(index, ExportedModel(export), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        with urllib.request.urlopen(f"{base}/thumbs/{index.items[0]['thumbnail']}", timeout=30) as reply:
            assert reply.status == 200 and reply.read()[:2] == b"\xff\xd8"  # a JPEG
        for bad in ("../manifest.json", "000000/..%2F..%2Fmanifest.json", "000000/9.jpg", "000000/0.jpg%00"):
            with pytest.raises(urllib.error.HTTPError) as info:
                urllib.request.urlopen(f"{base}/thumbs/{bad}", timeout=30)
            assert info.value.code == 404, bad
    finally:
        server.shutdown()
        server.server_close()


def test_input_files_on_a_tensorflow_only_file_system(ram, empty_cwd):
    from schemas import input_files

    put(f"{ram}/tree/a.txt", b"a")
    put(f"{ram}/tree/sub/b.txt", b"b")
    put(f"{ram}/tree/sub/deeper/c.bin", b"c")
    assert input_files.match_files(f"{ram}/tree/*.txt") == [f"{ram}/tree/a.txt"]
    assert input_files.match_files(f"{ram}/tree/**") == [
        f"{ram}/tree/a.txt", f"{ram}/tree/sub/b.txt", f"{ram}/tree/sub/deeper/c.bin"]
    assert input_files.match_files(f"{ram}/tree/**.txt") == [f"{ram}/tree/a.txt", f"{ram}/tree/sub/b.txt"]
    assert input_files.match_files(f"{ram}/absent/**") == []
    with input_files.open_file(f"{ram}/tree/sub/b.txt") as f:
        assert f.read() == b"b"
    with input_files.create_file(f"{ram}/tree/new.bin") as f:
        f.write(b"\x00new")
    assert input_files.read_image_path(f"{ram}/tree/new.bin") == (b"\x00new", None)
    assert input_files.read_image_path(f"{ram}/tree/none.png") == (None, input_files.IMAGE_NOT_FOUND)


def test_rewritten_outputs_replace_the_old_content(ram, empty_cwd):
    """ram:// appends to a reopened file (TensorFlow 2.21); the writers replace, as gs:// does."""
    from schemas import input_files
    from trainer.evaluation import files, report

    report.write_json(f"{ram}/eval/r.json", {"a": "a much longer first payload"})
    report.write_json(f"{ram}/eval/r.json", {"a": 1})
    assert get_json(f"{ram}/eval/r.json") == {"a": 1}
    for _ in range(2):
        with files.local_output(f"{ram}/index.faiss") as local:
            with open(local, "wb") as f:
                f.write(b"index")
        with input_files.create_file(f"{ram}/table.json") as f:
            f.write(b"{}")
    assert files.read_bytes(f"{ram}/index.faiss") == b"index"
    assert files.read_bytes(f"{ram}/table.json") == b"{}"


def test_missing_remote_inputs_are_clear_errors(ram, export, empty_cwd, capsys):
    from trainer.evaluation import cli
    from trainer.search import cli as search_cli

    assert cli.main(["word-similarity", "--model", f"{ram}/nope/export", "--pairs", f"{ram}/x.txt"]) == 2
    assert f"model directory not found: {ram}/nope/export" in capsys.readouterr().err
    put(f"{ram}/run2/export/variables/README", b"not a SavedModel")
    assert cli.main(["word-similarity", "--model", f"{ram}/run2/export", "--pairs", f"{ram}/x.txt"]) == 2
    assert "is not a SavedModel: no saved_model.pb" in capsys.readouterr().err
    assert cli.main(["word-similarity", "--model", export, "--pairs", f"{ram}/missing.txt"]) == 2
    assert "align-eval word-similarity: error:" in capsys.readouterr().err
    assert cli.main(["retrieval", "--model", export, "--karpathy_json", f"{ram}/missing.json",
                     "--image_root", ram]) == 2
    assert "align-eval retrieval: error:" in capsys.readouterr().err
    assert not gfile.exists(f"{ram}/run/eval")  # no result file for a failed task
    assert search_cli.main(["query", "--index_dir", f"{ram}/no_index", "--text", "red"]) == 2
    assert f"no search index at {ram}/no_index" in capsys.readouterr().err
