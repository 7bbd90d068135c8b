"""align-dedup calibrate / fit-centroids on small generated and demo_data images."""
import json
import os

import numpy as np
import pytest

from dedup import calibrate
from dedup.cli import main
from dedup.kmeans import load_centroids
from tests.dedup import fixtures

DEMO_SHARD = os.path.join(os.path.dirname(__file__), "..", "..", "demo_data", "webdataset", "00000.tar")


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("imgs")
    for i in range(12):
        (folder / f"{i}.png").write_bytes(fixtures.encode(fixtures.make_image(500 + i)))
    return str(folder)


def test_threshold_table_on_hand_made_cosines():
    data = calibrate.CalibrationData({"a": np.array([0.99, 0.96]), "b": np.array([0.98, 0.90])},
                                     np.array([0.1, 0.97, 0.2, 0.5]))
    row, = calibrate.threshold_table(data, [0.95], positive_fraction=0.5)
    assert row["recall"] == 0.75 and row["false_positive_rate"] == 0.25 and row["false_positives"] == 1
    assert row["precision"] == pytest.approx(0.375 / (0.375 + 0.125))
    assert row["recall_by_family"] == {"a": 1.0, "b": 0.5}


def test_choose_threshold_for_a_false_positive_rate_or_a_recall():
    negatives = np.array([0.5, 0.97, 0.2, 0.9612, 0.3, 0.1, 0.0, 0.4, 0.6, 0.7])
    data = calibrate.CalibrationData({"ordinary_copy": np.array([0.99, 0.98, 0.975, 0.95])}, negatives)
    threshold, how = calibrate.choose_threshold(data, target_false_positive_rate=0.1)
    assert threshold == 0.9612 and how == {"target": "false_positive_rate", "value": 0.1, "negatives": 10}
    assert calibrate.measured_at(data, threshold, 0.5)["false_positives"] == 1
    threshold, how = calibrate.choose_threshold(data, target_false_positive_rate=0.01)
    assert threshold == 0.97 and "resolution" in how["note"]  # none above: below 1/10
    threshold, how = calibrate.choose_threshold(data, target_recall=0.75)
    assert 0.97 <= threshold < 0.975 and how["family"] == "ordinary_copy"
    assert calibrate.measured_at(data, threshold, 0.5)["recall_by_family"]["ordinary_copy"] == 0.75
    with pytest.raises(ValueError):
        calibrate.choose_threshold(data)


def test_calibrate_reports_recall_per_family(image_folder, tmp_path, capsys):
    out = str(tmp_path / "cal.json")
    assert main(["calibrate", "--eval_images", image_folder, "--negatives_per_image", "5",
                 "--families", "jpeg_30_90,ordinary_copy,offset_crop_5", "--thresholds", "0.975",
                 "--output_json", out]) == 0
    row, = json.load(open(out))["rows"]
    # Re-encodes are what the pixel embedder is built for; the small crops of ordinary copies
    # are lined up by the eval views and the aligned check.
    assert row["recall_by_family"] == {"jpeg_30_90": 1.0, "ordinary_copy": 1.0, "offset_crop_5": 1.0}
    assert row["false_positive_rate"] == 0.0
    assert "| 0.9750 |" in capsys.readouterr().out


def test_calibration_file_from_calibrate_to_the_curation_flags(image_folder, tmp_path, capsys):
    import argparse

    from dedup.config import DedupConfig, add_dedup_flags

    path = str(tmp_path / "calibration.json")
    assert main(["calibrate", "--eval_images", image_folder, "--families", "ordinary_copy,hflip",
                 "--output", path, "--target_false_positive_rate", "0.01",
                 "--dedup_eval_view_mirror"]) == 0
    record = json.load(open(path))
    assert record["chosen_by"] == {"target": "false_positive_rate", "value": 0.01,
                                   "negatives": 12 * 11}  # every pair of 12 different images
    assert record["eval_views"]["mirror"] is True and record["embedder"]["id"] == "pixel"
    assert set(record["measured"]["recall_by_family"]) == {"ordinary_copy", "hflip"}
    assert record["measured"]["false_positive_rate"] <= 0.01
    assert record["command"].startswith("align-dedup calibrate --eval_images ")
    assert "--dedup_calibration " + path in capsys.readouterr().out
    parser = argparse.ArgumentParser()
    add_dedup_flags(parser)
    config = DedupConfig.from_flags(parser.parse_args(["--dedup_calibration", path]))
    assert config.cosine_threshold == record["cosine_threshold"] and config.eval_view_mirror
    # --output needs a target; a calibration for another embedder is a clean CLI error.
    assert main(["calibrate", "--eval_images", image_folder, "--output", path]) == 2
    assert main(["calibrate", "--eval_images", image_folder, "--dedup_calibration", path,
                 "--dedup_embedder", str(tmp_path)]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_calibrate_on_real_demo_images(tmp_path):
    # 20 real OpenClipArt/emoji images of demo_data: re-encoded copies and ordinary copies
    # (rescaled, cropped, brightened, JPEG) all stay above 0.975; no pair of different images.
    out = str(tmp_path / "cal.json")
    assert main(["calibrate", "--eval_images", DEMO_SHARD, "--max_images", "20",
                 "--families", "jpeg_30_90,ordinary_copy", "--thresholds", "0.975",
                 "--output_json", out]) == 0
    row, = json.load(open(out))["rows"]
    assert row["recall_by_family"] == {"jpeg_30_90": 1.0, "ordinary_copy": 1.0}
    assert row["false_positive_rate"] == 0.0


def test_fit_centroids_writes_a_reusable_artifact(image_folder, tmp_path, capsys):
    path = str(tmp_path / "centroids.npy")
    assert main(["fit-centroids", "--images", image_folder, "--output", path,
                 "--dedup_num_clusters", "4"]) == 0
    centroids = load_centroids(path)
    assert centroids.shape == (4, 1024)
    np.testing.assert_allclose(np.linalg.norm(centroids, axis=1), 1.0, atol=1e-5)
    meta = json.load(open(path + ".json"))
    assert meta["num_clusters"] == 4 and meta["sample_size"] == 12 and meta["embedder"] == "pixel"
    assert "--dedup_centroids" in capsys.readouterr().out


def test_missing_eval_images_is_a_clear_cli_error(tmp_path, capsys):
    assert main(["calibrate", "--eval_images", str(tmp_path / "none/*.jpg")]) == 2
    assert "matches no file or folder" in capsys.readouterr().err
