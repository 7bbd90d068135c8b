"""Fine-tuning for retrieval (paper 5.1) through the trainer's own loop, model and export."""
import dataclasses
import json
import os

import numpy as np
import pytest

from trainer.config import ImageTowerConfig, ModelConfig, OptimConfig, TextTowerConfig, TrainConfig
from trainer.evaluation import finetune


def _base_config() -> TrainConfig:
    return TrainConfig(
        model=ModelConfig(
            image=ImageTowerConfig(variant="B0", width_coefficient=0.25, depth_coefficient=0.1,
                                   resize_px=32, crop_px=32, projection_dim=16),
            text=TextTowerConfig(size="tiny", num_layers=1, hidden_dim=32, num_heads=2, intermediate_dim=64,
                                 max_tokens=8)),
        optim=OptimConfig(peak_learning_rate=1e-3, warmup_steps=10, total_steps=100),
        global_batch_size=32, mixed_precision="float32", shuffle_buffer=16, cycle_length=1,
        checkpoint_every_steps=50, log_every_steps=10)


def test_finetune_config_defaults_to_the_papers_recipe():
    # Paper 5.1: batch 16384 -> 2048, learning rate 1e-5 with linear decay, no warm-up mentioned;
    # the paper's batch applies even though this base run used 32.
    cfg = finetune.finetune_config(_base_config(), steps=20)
    assert (cfg.global_batch_size, cfg.optim.peak_learning_rate) == (2048, 1e-5)
    assert (cfg.optim.total_steps, cfg.optim.warmup_steps, cfg.checkpoint_every_steps) == (20, 0, 20)
    assert (cfg.label_smoothing, cfg.model) == (_base_config().label_smoothing, _base_config().model)
    assert _base_config().global_batch_size == 32  # the base is not modified
    explicit = finetune.finetune_config(_base_config(), 5, global_batch_size=8, peak_learning_rate=3e-5,
                                        warmup_steps=2)
    assert (explicit.global_batch_size, explicit.optim.peak_learning_rate, explicit.optim.warmup_steps) == (
        8, 3e-5, 2)
    assert finetune.finetune_config(_base_config(), 1).optim.total_steps == 1  # no warm-up: 1 step works
    with pytest.raises(ValueError, match="at least 1 step"):
        finetune.finetune_config(_base_config(), 0)
    with pytest.raises(ValueError, match="warmup_steps"):
        finetune.finetune_config(_base_config(), 5, warmup_steps=5)


def test_finetune_schedule_starts_at_the_peak_and_decays_linearly_to_zero():
    from trainer.optimizer import learning_rate_schedule

    schedule = learning_rate_schedule(finetune.finetune_config(_base_config(), steps=3000).optim)
    assert float(schedule(0)) == pytest.approx(1e-5)
    assert float(schedule(1500)) == pytest.approx(5e-6, rel=1e-5)
    assert float(schedule(3000)) == 0.0


def test_recipe_sets_the_papers_steps_unless_steps_is_given():
    assert (finetune.resolve_steps(recipe="flickr30k"), finetune.resolve_steps(recipe="mscoco")) == (3000, 6000)
    assert finetune.resolve_steps(steps=50, recipe="mscoco") == 50
    with pytest.raises(ValueError, match="--recipe"):
        finetune.resolve_steps()
    from trainer.evaluation import cli

    args = cli.build_parser().parse_args(["finetune", "--model", "m", "--data", "d", "--workdir", "w",
                                          "--recipe", "mscoco"])
    assert (args.recipe, args.steps, args.global_batch_size, args.peak_learning_rate, args.warmup_steps) == (
        "mscoco", None, None, None, None)
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["finetune", "--model", "m", "--data", "d", "--workdir", "w",
                                       "--recipe", "coco"])


def test_finetune_writes_a_new_export(tmp_path, capsys):
    import tensorflow as tf

    from tests.trainer.tiny_data import write_tfrecords, write_vocab
    from trainer.evaluation import cli
    from trainer.evaluation.exported_model import ExportedModel
    from trainer.model import build_dual_encoder

    vocab = str(tmp_path / "vocab.txt")
    tokens = write_vocab(vocab)
    data = write_tfrecords(str(tmp_path / "data"), num_examples=16, num_shards=2, size_px=(40, 36))
    base, cfg = tmp_path / "base", _base_config()
    model = build_dual_encoder(cfg.model, len(tokens))
    tf.train.Checkpoint(model=model, step=tf.Variable(7, dtype=tf.int64)).save(str(base / "checkpoints" / "ckpt"))
    (base / "config.json").write_text(json.dumps(
        {"config_name": "tiny", "config": dataclasses.asdict(cfg), "data": data, "vocab": vocab}))
    (base / "export").mkdir()

    new = tmp_path / "ft"
    assert cli.main(["finetune", "--model", str(base / "export"), "--data", data, "--workdir", str(new),
                     "--steps", "2", "--global_batch_size", "4"]) == 0
    out = capsys.readouterr().out
    assert "global batch 4 (--global_batch_size)" in out
    assert "peak learning rate 1e-05 (paper 5.1 default" in out and "0 warm-up steps" in out
    result = json.loads((new / "finetune.json").read_text())["result"]
    assert (result["global_batch_size"], result["steps"], result["warmup_steps"]) == (4, 2, 0)
    assert result["peak_learning_rate"] == 1e-5
    info = json.loads((new / "export" / "align_export.json").read_text())
    assert (info["config_name"], info["step"]) == ("tiny_finetune", 2)
    exported = ExportedModel(str(new / "export"))
    emb = exported.embed_texts(["a photo of a red cat"])
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), [1.0], rtol=1e-5)
    # The fine-tuned weights started from the base checkpoint and moved.
    reader = tf.train.load_checkpoint(str(new / "checkpoints"))
    base_reader = tf.train.load_checkpoint(str(base / "checkpoints"))
    name = next(n for n in reader.get_variable_to_shape_map() if "text_projection" in n and "kernel" in n
                and "OPTIMIZER" not in n)
    assert not np.allclose(reader.get_tensor(name), base_reader.get_tensor(name))
    start = tf.train.load_checkpoint(str(new / "checkpoints" / "ckpt-0"))
    np.testing.assert_array_equal(start.get_tensor(name), base_reader.get_tensor(name))
