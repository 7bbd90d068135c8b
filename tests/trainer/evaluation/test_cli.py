"""align-eval end to end on the stand-in export (colour histograms / hashed tokens)."""
import json
import os

import numpy as np
import pytest

from tests.trainer.evaluation import fixtures_data as fd
from trainer.evaluation import cli


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_retrieval_from_tfrecords_with_several_captions(standin_export, tmp_path, capsys):
    records = fd.write_tfrecords(tmp_path / "eval.tfrecord", [
        ("k0", "red", "red"), ("k1", "red", "a red thing"),
        ("k2", "blue", "blue"), ("k3", "green", "green"), ("k4", "green", "blue sky"),  # wrong caption
    ])
    out_json = tmp_path / "r.json"
    code, out, _ = run(capsys, "retrieval", "--model", standin_export, "--tfrecords", records,
                       "--output_json", str(out_json), "--ks", "1,2")
    assert code == 0
    result = json.loads(out_json.read_text())["result"]
    assert (result["num_images"], result["num_texts"]) == (3, 5)
    # image-to-text: red -> "red" first; blue -> "blue" (1.0) tied with "blue sky" (cos 1/sqrt2 <
    # 1): hit; green -> "green" first: all hit at 1.
    assert result["image_to_text"] == {"R@1": 1.0, "R@2": 1.0}
    # text-to-image: "blue sky" (green's caption) is closest to blue -> miss at 1, green and red
    # tie at 0 for rank 2: pessimistic -> rank 2: miss at 2 as well. The 4 others hit at 1.
    assert result["text_to_image"] == {"R@1": 0.8, "R@2": 0.8}
    assert result["chance"]["text_to_image"]["R@1"] == pytest.approx(1 / 3)
    assert "image_to_text / R@1" in out and "100.00 %" in out and f"wrote {out_json}" in out


def test_retrieval_from_karpathy_json(standin_export, tmp_path, capsys):
    (tmp_path / "val2014").mkdir()
    for colour in ("red", "blue"):
        (tmp_path / "val2014" / f"{colour}.jpg").write_bytes(fd.jpeg_bytes(colour))
    data = {"images": [
        {"filepath": "val2014", "filename": "red.jpg", "cocoid": 1, "split": "test",
         "sentences": [{"raw": "red", "tokens": ["red"]}, {"raw": "something red", "tokens": []}]},
        {"filepath": "val2014", "filename": "blue.jpg", "cocoid": 2, "split": "test",
         "sentences": [{"raw": "blue", "tokens": ["blue"]}]},
        {"filepath": "val2014", "filename": "missing.jpg", "cocoid": 3, "split": "train", "sentences": []},
    ]}
    (tmp_path / "dataset_coco.json").write_text(json.dumps(data))
    code, _, _ = run(capsys, "retrieval", "--model", standin_export, "--karpathy_json",
                     str(tmp_path / "dataset_coco.json"), "--image_root", str(tmp_path),
                     "--output_json", str(tmp_path / "k.json"))
    assert code == 0
    result = json.loads((tmp_path / "k.json").read_text())["result"]
    assert (result["num_images"], result["num_texts"]) == (2, 3)
    assert result["image_to_text"]["R@1"] == 1.0 and result["text_to_image"]["R@1"] == 1.0


def test_zeroshot_knn_and_linear_probe(standin_export, tmp_path, capsys):
    train = fd.write_class_folder(tmp_path / "train", per_class=3)
    test = fd.write_class_folder(tmp_path / "test", per_class=1)
    code, out, _ = run(capsys, "zeroshot", "--model", standin_export, "--class_folder", test,
                       "--prompt_ensembling", "both", "--output_json", str(tmp_path / "z.json"))
    assert code == 0
    result = json.loads((tmp_path / "z.json").read_text())["result"]
    assert result["num_classes"] == 3 and result["chance"]["top1"] == pytest.approx(1 / 3)
    assert result["majority_class"] == {"top1": pytest.approx(1 / 3)}
    assert result["prompt_ensembling"] == {"templates": 80, "top1": 1.0, "mean_per_class_top1": 1.0}
    assert result["single_template"] == {"templates": 1, "top1": 1.0, "mean_per_class_top1": 1.0}
    code, _, _ = run(capsys, "knn", "--model", standin_export, "--train_folder", train, "--eval_folder", test,
                     "--ks", "1,3", "--vote_k", "3", "--output_json", str(tmp_path / "n.json"))
    result = json.loads((tmp_path / "n.json").read_text())["result"]
    assert result == {"num_index_images": 9, "num_queries": 3, "R@1": 1.0, "R@3": 1.0,
                      "vote_top1@3": 1.0, "seconds": result["seconds"]}
    code, _, _ = run(capsys, "linear-probe", "--model", standin_export, "--train_folder", train,
                     "--eval_folder", test, "--output_json", str(tmp_path / "l.json"))
    assert json.loads((tmp_path / "l.json").read_text())["result"]["top1"] == 1.0
    # Queries may cover fewer classes than the index; labels are matched by class name.
    only_blue = fd.write_class_folder(tmp_path / "blue_only", per_class=2, colours=("blue",))
    code, _, _ = run(capsys, "knn", "--model", standin_export, "--train_folder", train, "--eval_folder", only_blue,
                     "--ks", "1", "--output_json", str(tmp_path / "b.json"))
    assert json.loads((tmp_path / "b.json").read_text())["result"]["R@1"] == 1.0
    code, _, err = run(capsys, "knn", "--model", standin_export, "--train_folder", only_blue, "--eval_folder", train)
    assert code == 2 and "eval classes missing from the train/index folder: ['green', 'red']" in err


def test_word_similarity_and_intramodal(standin_export, tmp_path, capsys):
    pairs = tmp_path / "simlex.txt"
    pairs.write_text("word1\tword2\tPOS\tSimLex999\nred\tred\tA\t10\nred\tblue\tA\t1\n"
                     "blue\tblue\tA\t9\ngreen\tred\tA\t2\n")
    code, _, _ = run(capsys, "word-similarity", "--model", standin_export, "--pairs", str(pairs),
                     "--output_json", str(tmp_path / "w.json"))
    # cosines [1, 0, 1, 0] vs gold [10, 1, 9, 2]: rho = 4 / sqrt(4 * 5)
    rho = json.loads((tmp_path / "w.json").read_text())["result"]["spearman_rho"]
    assert code == 0 and rho == pytest.approx(4 / np.sqrt(20))

    images = tmp_path / "images"
    images.mkdir()
    for name, colour in (("a", "red"), ("b", "red"), ("c", "blue"), ("d", "white")):
        (images / f"{name}.png").write_bytes(fd.png_bytes(colour))
    annotations = tmp_path / "sis.csv"
    annotations.write_text("a.png,b.png,5\nc.png,d.png,4\n")
    code, _, _ = run(capsys, "intramodal", "--model", standin_export, "--modality", "image", "--pairs",
                     str(annotations), "--data", str(images), "--input_format", "image_folder",
                     "--ks", "1,3", "--output_json", str(tmp_path / "i.json"))
    result = json.loads((tmp_path / "i.json").read_text())["result"]
    # a <-> b identical (hit at 1); c -> d: all other items score 0 (orthogonal colours): tie -> rank 2.
    assert (result["num_queries"], result["R@1"], result["R@3"]) == (4, 0.5, 1.0)


def test_bad_inputs_give_clear_errors(standin_export, tmp_path, capsys):
    code, _, err = run(capsys, "zeroshot", "--model", str(tmp_path / "nope"), "--class_folder", str(tmp_path))
    assert code == 2 and "model directory not found" in err
    (tmp_path / "workdir" / "export").mkdir(parents=True)
    code, _, err = run(capsys, "zeroshot", "--model", str(tmp_path / "workdir"), "--class_folder", str(tmp_path))
    assert code == 2 and "no saved_model.pb (did you mean its export/ subdirectory?)" in err
    folder = fd.write_class_folder(tmp_path / "classes", per_class=1)
    with open(os.path.join(folder, "red", "broken.png"), "wb") as f:
        f.write(b"not an image")
    code, _, err = run(capsys, "zeroshot", "--model", standin_export, "--class_folder", folder,
                       "--output_json", str(tmp_path / "z.json"))
    assert code == 2 and "1 unreadable image(s):" in err and "red/broken.png" in err
