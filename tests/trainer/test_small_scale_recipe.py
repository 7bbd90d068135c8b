"""The trainer parts added for learning at small scale: mean text pooling, AdamW, precise BatchNorm
statistics (docs/TRAINING.md, "Why the trainer learned slowly")."""
import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.trainer.tiny_model import VOCAB_SIZE, synthetic_batch, tiny_model_config
from trainer.batch_norm_stats import BatchNormRecalibrator
from trainer.config import OptimConfig
from trainer.image_tower import batch_norm_layers, build_image_tower
from trainer.model import build_dual_encoder
from trainer.optimizer import AdamW, build_optimizer
from trainer.text_tower import build_text_encoder


def test_mean_pooling_is_the_masked_mean_of_the_sequence_output():
    keras.utils.set_random_seed(0)
    text_cfg = dataclasses.replace(tiny_model_config().text, pooling="mean")
    encoder = build_text_encoder(text_cfg, VOCAB_SIZE)
    batch = synthetic_batch(3, seed=1)
    pooled = encoder({"token_ids": batch["token_ids"], "padding_mask": batch["padding_mask"]}).numpy()
    sequence = encoder.get_layer("bert_encoder")({
        "token_ids": batch["token_ids"], "segment_ids": np.zeros_like(batch["token_ids"]),
        "padding_mask": batch["padding_mask"].astype(np.int32)}).numpy()
    mask = batch["padding_mask"][..., None].astype(np.float32)
    np.testing.assert_allclose(pooled, (sequence * mask).sum(1) / mask.sum(1), rtol=1e-5, atol=1e-6)
    other = batch["token_ids"].copy()
    other[~batch["padding_mask"]] = 7  # padded positions are not part of the mean
    again = encoder({"token_ids": other, "padding_mask": batch["padding_mask"]}).numpy()
    np.testing.assert_allclose(pooled, again, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="pooling"):
        build_text_encoder(dataclasses.replace(text_cfg, pooling="max"), VOCAB_SIZE)


def test_adamw_decays_weights_but_not_the_excluded_variables():
    model = build_dual_encoder(tiny_model_config(), VOCAB_SIZE)
    cfg = OptimConfig(optimizer="adamw", peak_learning_rate=0.1, warmup_steps=1, total_steps=10,
                      weight_decay=0.5)
    optimizer = build_optimizer(cfg, model)
    assert isinstance(optimizer, AdamW) and not optimizer.sum_gradients_across_replicas
    kernel = model.text_projection.kernel
    before = {"kernel": kernel.numpy().copy(), "temperature": float(model.temperature.numpy()),
              "bias": model.text_projection.bias.numpy().copy()}
    zeros = [tf.zeros_like(v) for v in model.trainable_variables]
    optimizer.apply_gradients(zip(zeros, model.trainable_variables))
    # Zero gradients: Adam's step is 0; decoupled decay w -= lr * wd * w on the kernel only
    # (lr(0) = peak * 1 / warmup = 0.1).
    np.testing.assert_allclose(kernel.numpy(), before["kernel"] * (1 - 0.1 * 0.5), rtol=1e-6)
    assert float(model.temperature.numpy()) == before["temperature"]
    np.testing.assert_array_equal(model.text_projection.bias.numpy(), before["bias"])
    with pytest.raises(ValueError, match="optimizer"):
        build_optimizer(dataclasses.replace(cfg, optimizer="sgd"), model)


def test_precise_batch_norm_statistics_are_the_mean_over_batches():
    keras.utils.set_random_seed(0)
    image_cfg = dataclasses.replace(tiny_model_config().image, drop_connect_rate=0.0)
    tower = build_image_tower(image_cfg)
    layers = batch_norm_layers(tower)
    stem_bn = [l for l in layers if l.name == "stem_bn"][0]
    assert float(np.abs(stem_bn.moving_mean.numpy()).max()) == 0.0  # initial statistics
    rng = np.random.default_rng(0)
    batches = [{"image": tf.constant(rng.uniform(0, 255, (4, 32, 32, 3)).astype(np.float32))}
               for _ in range(3)]
    strategy = tf.distribute.get_strategy()
    assert BatchNormRecalibrator(tower, strategy).recalibrate(iter(batches), 3) == len(layers)
    # Independent check on the first BatchNorm: its input (the stem conv) does not depend on any
    # BatchNorm, so its per-batch moments can be computed directly.
    trunk = [l for l in tower.layers if isinstance(l, keras.Model)][0]
    stem_conv = keras.Model(trunk.input, trunk.get_layer("stem_conv").output)
    means, variances = zip(*[tf.nn.moments(stem_conv(b["image"]), axes=[0, 1, 2]) for b in batches])
    np.testing.assert_allclose(stem_bn.moving_mean.numpy(), np.mean(means, axis=0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(stem_bn.moving_variance.numpy(), np.mean(variances, axis=0),
                               rtol=1e-4, atol=1e-6)
    # Every later BatchNorm was set too (no longer at its initial 0 / 1).
    assert all(float(np.abs(l.moving_mean.numpy()).max()) > 0 for l in layers)
