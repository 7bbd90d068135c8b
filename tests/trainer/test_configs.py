"""Experiment configs (paper 4.1 values) and command-line overrides."""
import dataclasses

import pytest

from trainer import configs, train
from trainer.config_overrides import apply_override, config_from_dict


SMALL_SCALE = ("tiny_cpu", "b0_parity_cpu")  # labelled departures, measured in docs/TRAINING.md


def test_every_config_builds_and_states_its_command():
    for name in configs.available():
        cfg = configs.get(name)
        module = __import__(f"trainer.configs.{name}", fromlist=["get_config"])
        assert f"align-train --config {name}" in module.__doc__
        assert cfg.optim.total_steps > cfg.optim.warmup_steps
        assert cfg.batch_norm_recalibration_batches > 0  # precise BN statistics: every config
        if name in SMALL_SCALE:
            assert "SMALL-SCALE" in module.__doc__ and "departure" in module.__doc__.lower()
            continue
        # The paper's recipe (4.1): [CLS], temperature 1.0, label smoothing 0.1, LAMB, dropout.
        assert cfg.label_smoothing == 0.1 and cfg.model.temperature_init == 1.0
        assert cfg.model.text.pooling == "cls" and cfg.optim.optimizer == "lamb"
        assert cfg.model.text.dropout_rate == 0.1 and cfg.model.image.drop_connect_rate == 0.2
        assert cfg.model.image.batch_norm_momentum == 0.99


def test_parity_config_is_the_benchmarks_shape():
    cfg = configs.get("b0_parity_cpu")
    image, text = cfg.model.image, cfg.model.text
    assert (image.variant, image.width_coefficient, image.depth_coefficient) == ("B0", None, None)
    assert (image.crop_px, image.projection_dim, text.size, text.max_tokens) == (64, 128, "tiny", 32)
    assert (cfg.global_batch_size, cfg.optim.total_steps) == (64, 370)


def test_l2_bert_large_is_the_papers_setup():
    cfg = configs.get("l2_bert_large")
    assert cfg.global_batch_size == 16_384 and cfg.optim.total_steps == 1_200_000
    assert cfg.optim.warmup_steps == 10_000 and cfg.optim.peak_learning_rate == 1e-3
    assert cfg.optim.weight_decay == 1e-5
    assert (cfg.model.image.resize_px, cfg.model.image.crop_px, cfg.model.text.max_tokens) == (
        346, 289, 64)
    assert cfg.model.image.variant == "L2" and cfg.model.text.size == "large"


def test_l2_bert_large_embeds_the_pooled_l2_features_without_projection():
    from trainer.image_tower import image_feature_dim, last_block_channels

    # Paper 4.1: no image projection (global pooling of L2's last block); the text side is projected
    # to match. Computed from the coefficients, without building the network.
    image = configs.get("l2_bert_large").model.image
    assert image.projection_dim is None
    assert (image.width_coefficient, image.depth_coefficient) == (4.3, 5.3)
    assert last_block_channels(4.3) == 1376
    assert image_feature_dim(image) == 1376


def test_unknown_config_is_rejected():
    with pytest.raises(ValueError, match="tiny_cpu"):
        configs.get("b9")


def test_overrides_parse_by_field_type():
    cfg = configs.get("tiny_cpu")
    apply_override(cfg, "optim.peak_learning_rate=5e-4")
    apply_override(cfg, "model.image.crop_px=96")
    apply_override(cfg, "optim.grad_clip_norm=1.5")
    apply_override(cfg, "model.image.projection_dim=none")
    apply_override(cfg, "optim.total_steps=1e4")
    assert cfg.optim.peak_learning_rate == 5e-4 and cfg.model.image.crop_px == 96
    assert cfg.optim.grad_clip_norm == 1.5 and cfg.model.image.projection_dim is None
    assert cfg.optim.total_steps == 10_000 and isinstance(cfg.optim.total_steps, int)
    with pytest.raises(KeyError, match="crop_px"):
        apply_override(cfg, "model.image.crop=96")
    with pytest.raises(ValueError):
        apply_override(cfg, "global_batch_size")


def test_config_round_trips_through_json_dict():
    cfg = configs.get("b3_bert_mini")
    assert config_from_dict(dataclasses.asdict(cfg)) == cfg


def test_cli_flags_override_the_config():
    args = train.build_parser().parse_args([
        "--config", "tiny_cpu", "--data", "x", "--vocab", "v", "--workdir", "w", "--steps", "20",
        "--global_batch_size", "16", "--set", "log_every_steps=5"])
    cfg = train.resolve_config(args)
    assert cfg.optim.total_steps == 20 and cfg.global_batch_size == 16 and cfg.log_every_steps == 5
    assert cfg.optim.warmup_steps == 2  # the config's 30 do not fit in 20 steps: a tenth
