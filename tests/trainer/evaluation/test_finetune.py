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


def test_finetune_config_divides_batch_and_learning_rate():
    cfg = finetune.finetune_config(_base_config(), steps=20)
    assert (cfg.global_batch_size, cfg.optim.peak_learning_rate) == (4, pytest.approx(1e-4))
    assert (cfg.optim.total_steps, cfg.optim.warmup_steps, cfg.checkpoint_every_steps) == (20, 2, 20)
    assert _base_config().global_batch_size == 32  # the base is not modified
    explicit = finetune.finetune_config(_base_config(), 5, global_batch_size=8, peak_learning_rate=3e-5)
    assert (explicit.global_batch_size, explicit.optim.peak_learning_rate) == (8, 3e-5)
    with pytest.raises(ValueError, match="at least 2 steps"):
        finetune.finetune_config(_base_config(), 1)


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
                     "--steps", "2"]) == 0
    result = json.loads((new / "finetune.json").read_text())["result"]
    assert (result["global_batch_size"], result["steps"]) == (4, 2)
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
