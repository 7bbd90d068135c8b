"""contrastive_loss against a plain numpy implementation and a hand-computed case (paper 4.1)."""
import math

import numpy as np
import pytest
import tensorflow as tf

from trainer.loss import contrastive_loss


def numpy_contrastive_loss(image_emb, text_emb, temperature, label_smoothing):
    """Mean over the batch of the smoothed softmax cross-entropy, each direction, and their sum."""
    def cross_entropy(logits):
        n = logits.shape[1]
        targets = np.eye(logits.shape[0], n) * (1 - label_smoothing) + label_smoothing / n
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        return float(-(targets * log_probs).sum(axis=1).mean())
    logits = image_emb @ text_emb.T / temperature
    i2t, t2i = cross_entropy(logits), cross_entropy(logits.T)
    return {"loss": i2t + t2i, "loss_image_to_text": i2t, "loss_text_to_image": t2i}


def random_unit_vectors(rng, n, d):
    x = rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("temperature,label_smoothing", [(1.0, 0.1), (0.05, 0.1), (0.7, 0.0)])
def test_loss_matches_numpy(temperature, label_smoothing):
    rng = np.random.default_rng(0)
    image, text = random_unit_vectors(rng, 6, 5), random_unit_vectors(rng, 6, 5)
    got = contrastive_loss(image, text, tf.constant(temperature), label_smoothing=label_smoothing)
    want = numpy_contrastive_loss(image.astype(np.float64), text.astype(np.float64), temperature, label_smoothing)
    for key in want:
        assert float(got[key]) == pytest.approx(want[key], rel=1e-5, abs=1e-6), key


def test_hand_computed_two_orthogonal_pairs():
    # logits = identity (temperature 1): each row's cross-entropy is log(1 + e^-1) in both directions.
    eye = np.eye(2, dtype=np.float32)
    got = contrastive_loss(eye, eye, 1.0, label_smoothing=0.0)
    assert float(got["loss_image_to_text"]) == pytest.approx(math.log(1 + math.exp(-1)), rel=1e-6)
    assert float(got["loss"]) == pytest.approx(2 * math.log(1 + math.exp(-1)), rel=1e-6)
    # Label smoothing 0.1 over 2 columns: targets (0.95, 0.05).
    smoothed = contrastive_loss(eye, eye, 1.0, label_smoothing=0.1)
    log_p_pos, log_p_neg = -math.log(1 + math.exp(-1)), -1 - math.log(1 + math.exp(-1))
    assert float(smoothed["loss_text_to_image"]) == pytest.approx(-(0.95 * log_p_pos + 0.05 * log_p_neg), rel=1e-6)


def test_directions_differ_and_global_batch_size_scales_the_share():
    rng = np.random.default_rng(1)
    image, text = random_unit_vectors(rng, 4, 3), random_unit_vectors(rng, 4, 3)
    full = contrastive_loss(image, text, 0.5)
    assert float(full["loss_image_to_text"]) != pytest.approx(float(full["loss_text_to_image"]))
    share = contrastive_loss(image, text, 0.5, global_batch_size=16)  # this replica holds 4 of 16 pairs
    assert float(share["loss"]) == pytest.approx(float(full["loss"]) / 4, rel=1e-6)


def test_temperature_gradient_matches_numpy_finite_difference():
    rng = np.random.default_rng(2)
    image, text = random_unit_vectors(rng, 5, 4), random_unit_vectors(rng, 5, 4)
    temperature = tf.Variable(0.3)
    with tf.GradientTape() as tape:
        loss = contrastive_loss(image, text, temperature)["loss"]
    grad = float(tape.gradient(loss, temperature))
    h = 1e-6
    f = lambda t: numpy_contrastive_loss(image.astype(np.float64), text.astype(np.float64), t, 0.1)["loss"]
    assert grad == pytest.approx((f(0.3 + h) - f(0.3 - h)) / (2 * h), rel=1e-4)


def test_single_replica_strategy_gives_the_plain_loss():
    rng = np.random.default_rng(3)
    image, text = random_unit_vectors(rng, 4, 3), random_unit_vectors(rng, 4, 3)
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    got = strategy.run(lambda: contrastive_loss(image, text, 0.5))
    assert float(got["loss"]) == pytest.approx(numpy_contrastive_loss(image, text, 0.5, 0.1)["loss"], rel=1e-5)
