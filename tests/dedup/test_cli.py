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
    assert row["recall"] == 0.75 and row["false_positive_rate"] == 0.25
    assert row["precision"] == pytest.approx(0.375 / (0.375 + 0.125))
    assert row["recall_by_augmentation"] == {"a": 1.0, "b": 0.5}


def test_calibrate_reports_recall_per_augmentation(image_folder, tmp_path, capsys):
    out = str(tmp_path / "cal.json")
    assert main(["calibrate", "--eval_images", image_folder, "--negatives_per_image", "5",
                 "--augmentations", "jpeg_q50,brightness_0.9,crop_centre_0.8",
                 "--dedup_eval_crop_fractions", "0.8", "--thresholds", "0.975",
                 "--output_json", out]) == 0
    row, = json.load(open(out))["rows"]
    # Re-encodes and brightness changes are what the pixel embedder is built for; the centre
    # crop is matched by the eval-side crop view of the same fraction.
    assert row["recall_by_augmentation"] == {"jpeg_q50": 1.0, "brightness_0.9": 1.0,
                                             "crop_centre_0.8": 1.0}
    assert row["false_positive_rate"] == 0.0
    assert "| 0.975 |" in capsys.readouterr().out


def test_calibrate_on_real_demo_images(tmp_path):
    # 20 real OpenClipArt/emoji images of demo_data: copies that are resized, re-encoded and
    # colour-shifted all stay above the paper's 0.975; no pair of different images does.
    out = str(tmp_path / "cal.json")
    augmentations = "jpeg_q50,saturation_1.2,resize_1.5x,resize_0.7x+jpeg_q75+brightness_1.05"
    assert main(["calibrate", "--eval_images", DEMO_SHARD, "--max_images", "20",
                 "--negatives_per_image", "10", "--augmentations", augmentations,
                 "--thresholds", "0.975", "--output_json", out]) == 0
    row, = json.load(open(out))["rows"]
    assert set(row["recall_by_augmentation"].values()) == {1.0}
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
