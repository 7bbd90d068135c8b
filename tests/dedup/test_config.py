"""Flags -> DedupConfig, with the paper's defaults (Appendix A)."""
import argparse

import pytest

from dedup.config import DedupConfig, add_dedup_flags


def parse(argv):
    parser = argparse.ArgumentParser()
    add_dedup_flags(parser)
    args, beam_args = parser.parse_known_args(argv)
    return DedupConfig.from_flags(args), beam_args


def test_paper_defaults_and_stage_off_without_eval_images():
    config, _ = parse([])
    assert (config.num_clusters, config.top_clusters_per_image, config.clusters_per_bucket,
            config.cosine_threshold, config.embedder) == (4096, 10, 3, 0.975, "pixel")
    assert config.enabled is False and config.eval_image_globs == ()


def test_repeatable_eval_images_and_overrides_leave_beam_flags_alone():
    config, beam_args = parse(["--eval_images", "a/*.tar", "--eval_images", "b", "--runner", "DataflowRunner",
                               "--dedup_num_clusters", "512", "--dedup_cosine_threshold", "0.95",
                               "--dedup_eval_crop_fractions", "0.9,0.8", "--dedup_centroids", "c.npy",
                               "--dedup_phash_max_distance_bits", "-1", "--dedup_embedder", "gs://x/export"])
    assert config.eval_image_globs == ("a/*.tar", "b") and config.enabled
    assert (config.num_clusters, config.cosine_threshold, config.eval_crop_fractions) == (512, 0.95, (0.9, 0.8))
    assert (config.centroids_path, config.phash_max_distance_bits, config.embedder) == ("c.npy", -1, "gs://x/export")
    assert beam_args == ["--runner", "DataflowRunner"]


def test_invalid_settings_are_rejected():
    with pytest.raises(ValueError):
        DedupConfig(top_clusters_per_image=2, clusters_per_bucket=3)
    with pytest.raises(ValueError):
        DedupConfig(eval_crop_fractions=(1.5,))
    with pytest.raises(ValueError):
        DedupConfig(num_clusters=1 << 22)  # K^3 must fit an int64 bucket key
