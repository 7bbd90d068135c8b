"""Experiment configs (paper 4.1 values) and command-line overrides."""
import dataclasses

import pytest

from trainer import configs, train
from trainer.config_overrides import apply_override, config_from_dict


def test_every_config_builds_and_states_its_command():
    for name in configs.available():
        cfg = configs.get(name)
        module = __import__(f"trainer.configs.{name}", fromlist=["get_config"])
        assert f"align-train --config {name}" in module.__doc__
        assert cfg.optim.total_steps > cfg.optim.warmup_steps
        assert cfg.label_smoothing == 0.1 and cfg.model.temperature_init == 1.0


def test_l2_bert_large_is_the_papers_setup():
    cfg = configs.get("l2_bert_large")
    assert cfg.global_batch_size == 16_384 and cfg.optim.total_steps == 1_200_000
    assert cfg.optim.warmup_steps == 10_000 and cfg.optim.peak_learning_rate == 1e-3
    assert cfg.optim.weight_decay == 1e-5
    assert (cfg.model.image.resize_px, cfg.model.image.crop_px, cfg.model.text.max_tokens) == (
        346, 289, 64)
    assert cfg.model.image.variant == "L2" and cfg.model.text.size == "large"


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
