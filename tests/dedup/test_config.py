"""Flags -> DedupConfig: paper defaults for the search, the pixel embedder's for the decision, and
calibration files (--dedup_calibration)."""
import argparse
import json

import pytest

from dedup.config import (DedupConfig, DedupFlagError, add_dedup_flags, calibration_record,
                          embedder_identity, read_calibration, write_calibration)


def parse(argv):
    parser = argparse.ArgumentParser()
    add_dedup_flags(parser)
    args, beam_args = parser.parse_known_args(argv)
    return DedupConfig.from_flags(args), beam_args


def test_paper_defaults_and_stage_off_without_eval_images():
    config, _ = parse([])
    assert (config.num_clusters, config.top_clusters_per_image, config.clusters_per_bucket,
            config.embedder) == (4096, 10, 3, "pixel")
    assert config.enabled is False and config.eval_image_globs == ()


def test_weight_free_defaults_views_aligned_check_and_threshold():
    config, _ = parse([])
    assert config.cosine_threshold == 0.98 and config.threshold_source == "defaults"
    assert (config.eval_view_cut_fractions, config.eval_view_mirror, config.eval_crop_fractions) == (
        (0.07,), False, ())
    assert (config.verify_candidates_above, config.verify_max_candidates) == (0.7, 3)
    assert config.verifies and config.search_threshold == 0.7
    assert config.verify_local_weight == 0.0  # the local cap is opt-in
    savedmodel = DedupConfig(embedder="gs://x/export")
    assert not savedmodel.verifies and savedmodel.search_threshold == savedmodel.cosine_threshold
    assert not DedupConfig(verify_max_candidates=0).verifies


def test_repeatable_eval_images_and_overrides_leave_beam_flags_alone():
    config, beam_args = parse(["--eval_images", "a/*.tar", "--eval_images", "b", "--runner", "DataflowRunner",
                               "--dedup_num_clusters", "512", "--dedup_cosine_threshold", "0.95",
                               "--dedup_eval_crop_fractions", "0.9,0.8", "--dedup_centroids", "c.npy",
                               "--dedup_phash_max_distance_bits", "-1", "--dedup_embedder", "gs://x/export",
                               "--dedup_eval_view_cut_fractions", "0.05,0.1", "--dedup_eval_view_mirror",
                               "--dedup_verify_candidates_above", "0.8", "--dedup_verify_max_candidates", "2"])
    assert config.eval_image_globs == ("a/*.tar", "b") and config.enabled
    assert (config.num_clusters, config.cosine_threshold, config.eval_crop_fractions) == (512, 0.95, (0.9, 0.8))
    assert (config.centroids_path, config.phash_max_distance_bits, config.embedder) == ("c.npy", -1, "gs://x/export")
    assert (config.eval_view_cut_fractions, config.eval_view_mirror) == ((0.05, 0.1), True)
    assert (config.verify_candidates_above, config.verify_max_candidates) == (0.8, 2)
    assert config.threshold_source == "flags"
    assert beam_args == ["--runner", "DataflowRunner"]
    assert parse(["--dedup_eval_view_cut_fractions", ""])[0].eval_view_cut_fractions == ()
    assert parse(["--no-dedup_eval_view_mirror"])[0].eval_view_mirror is False
    assert config.savedmodel_trim_borders is False
    assert parse(["--dedup_savedmodel_trim_borders"])[0].savedmodel_trim_borders is True
    assert parse(["--dedup_verify_local_weight", "2"])[0].verify_local_weight == 2.0


def test_invalid_settings_are_rejected():
    with pytest.raises(ValueError):
        DedupConfig(top_clusters_per_image=2, clusters_per_bucket=3)
    with pytest.raises(ValueError):
        DedupConfig(eval_crop_fractions=(1.5,))
    with pytest.raises(ValueError):
        DedupConfig(eval_view_cut_fractions=(0.5,))
    with pytest.raises(ValueError):
        DedupConfig(num_clusters=1 << 22)  # K^3 must fit an int64 bucket key
    with pytest.raises(ValueError):
        DedupConfig(verify_local_weight=-1.0)


def write(path, config, threshold=0.9812):
    import dataclasses

    record = calibration_record(dataclasses.replace(config, cosine_threshold=threshold),
                                {"target": "false_positive_rate", "value": 1e-4},
                                {"recall_by_family": {"ordinary_copy": 0.97}}, "align-dedup calibrate x", 10)
    write_calibration(str(path), record)
    return record


def test_calibration_file_round_trip(tmp_path):
    made_with = DedupConfig(eval_view_cut_fractions=(0.05, 0.1), eval_view_mirror=True,
                            verify_candidates_above=0.8, verify_max_candidates=2,
                            verify_local_weight=2.0)
    record = write(tmp_path / "cal.json", made_with)
    on_disk = json.loads((tmp_path / "cal.json").read_text())
    assert on_disk == record == read_calibration(str(tmp_path / "cal.json"))
    assert on_disk["embedder"]["id"] == "pixel" and on_disk["embedder"]["parameters"]["trim_borders"]
    assert on_disk["eval_views"] == {"cut_fractions": [0.05, 0.1], "mirror": True,
                                     "centre_crop_fractions": []}
    assert on_disk["aligned_check"] == {"on": True, "candidates_above": 0.8, "max_candidates": 2,
                                        "local_weight": 2.0}
    assert on_disk["chosen_by"]["target"] == "false_positive_rate" and on_disk["date"]
    config, _ = parse(["--eval_images", "e", "--dedup_calibration", str(tmp_path / "cal.json")])
    assert config.cosine_threshold == 0.9812
    assert (config.eval_view_cut_fractions, config.eval_view_mirror) == ((0.05, 0.1), True)
    assert (config.verify_candidates_above, config.verify_max_candidates) == (0.8, 2)
    assert config.verify_local_weight == 2.0
    assert config.threshold_source.startswith(f"calibration {tmp_path / 'cal.json'} (target false_positive_rate")


def test_calibration_carries_savedmodel_input_trimming(tmp_path):
    model = tmp_path / "export"
    model.mkdir()
    (model / "saved_model.pb").write_bytes(b"model one")
    record = write(tmp_path / "model.json", DedupConfig(embedder=str(model), savedmodel_trim_borders=True))
    assert record["inputs"] == {"savedmodel_trim_borders": True}
    config, _ = parse(["--eval_images", "e", "--dedup_embedder", str(model),
                       "--dedup_calibration", str(tmp_path / "model.json")])
    assert config.savedmodel_trim_borders is True and config.cosine_threshold == 0.9812
    with pytest.raises(DedupFlagError, match="--dedup_savedmodel_trim_borders"):
        parse(["--eval_images", "e", "--dedup_embedder", str(model), "--no-dedup_savedmodel_trim_borders",
               "--dedup_calibration", str(tmp_path / "model.json")])


def test_calibration_for_another_embedder_is_an_error_naming_both(tmp_path):
    model = tmp_path / "export"
    model.mkdir()
    (model / "saved_model.pb").write_bytes(b"model one")
    write(tmp_path / "model.json", DedupConfig(embedder=str(model)))
    with pytest.raises(DedupFlagError) as error:  # made for the SavedModel, pixel configured
        parse(["--dedup_calibration", str(tmp_path / "model.json")])
    assert "SavedModel " + str(model) in str(error.value) and "pixel {" in str(error.value)
    config, _ = parse(["--dedup_calibration", str(tmp_path / "model.json"), "--dedup_embedder", str(model)])
    assert config.cosine_threshold == 0.9812
    (model / "saved_model.pb").write_bytes(b"model two, retrained in place")
    with pytest.raises(DedupFlagError, match="saved_model.pb sha256"):
        parse(["--dedup_calibration", str(tmp_path / "model.json"), "--dedup_embedder", str(model)])
    # Another pixel embedder (parameters changed since the file was written) is another embedder.
    record = write(tmp_path / "pixel.json", DedupConfig())
    record["embedder"]["parameters"]["side_px"] = 16
    (tmp_path / "pixel.json").write_text(json.dumps(record))
    with pytest.raises(DedupFlagError, match='made for the embedder pixel .*"side_px": 16'):
        parse(["--dedup_calibration", str(tmp_path / "pixel.json")])


def test_calibration_and_explicit_threshold_or_views_conflict(tmp_path):
    write(tmp_path / "cal.json", DedupConfig())
    with pytest.raises(DedupFlagError, match="do not also give --dedup_cosine_threshold"):
        parse(["--dedup_calibration", str(tmp_path / "cal.json"), "--dedup_cosine_threshold", "0.9"])
    with pytest.raises(DedupFlagError, match="--dedup_eval_view_cut_fractions, --dedup_eval_view_mirror"):
        parse(["--dedup_calibration", str(tmp_path / "cal.json"), "--dedup_eval_view_cut_fractions", "0.1",
               "--dedup_eval_view_mirror"])
    with pytest.raises(DedupFlagError, match="cannot read it"):
        parse(["--dedup_calibration", str(tmp_path / "missing.json")])
    (tmp_path / "other.json").write_text('{"rows": []}')  # e.g. calibrate --output_json's table
    with pytest.raises(DedupFlagError, match="not a calibration file"):
        parse(["--dedup_calibration", str(tmp_path / "other.json")])


def test_embedder_identity():
    assert embedder_identity(DedupConfig())["id"] == "pixel"
    with pytest.raises(DedupFlagError, match="cannot read .*saved_model.pb"):
        embedder_identity(DedupConfig(embedder="/nonexistent/export"))
