"""Dual encoder (paper 4.1): EfficientNet last-block pooling, BERT [CLS] -> Dense, temperature,
bfloat16 mixed precision, strategy selection and the fail-fast train step."""
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.trainer.tiny_model import VOCAB_SIZE, synthetic_batch, tiny_model_config, tiny_train_config
from trainer.config import ImageTowerConfig, ModelConfig, TextTowerConfig
from trainer.image_tower import build_efficientnet_trunk, image_feature_dim, last_block_channels, num_blocks
from trainer.loss import contrastive_loss
from trainer.model import build_dual_encoder
from trainer.optimizer import build_optimizer
from trainer.strategy import build_strategy, num_tf_config_tasks, resolve_kind, set_precision_policy
from trainer.text_tower import BERT_SIZES, bert_dims
from trainer.train_step import NonFiniteLossError, make_train_step, raise_if_not_finite


@pytest.fixture(scope="module")
def tiny_model():
    keras.utils.set_random_seed(0)
    return build_dual_encoder(tiny_model_config(), VOCAB_SIZE)


def _tf_batch(n, seed=0):
    return {k: tf.constant(v) for k, v in synthetic_batch(n, seed).items()}


def test_embeddings_are_unit_norm_float32_of_the_last_block_width(tiny_model):
    assert tiny_model.embedding_dim == last_block_channels(0.25) == 80  # round_filters(320 * 0.25)
    assert tiny_model.built and tiny_model.count_params() > 0  # usable by keras' summary tools
    image_emb, text_emb = tiny_model(_tf_batch(3), training=False)
    for emb in (image_emb, text_emb):
        assert emb.shape == (3, 80) and emb.dtype == tf.float32
        np.testing.assert_allclose(np.linalg.norm(emb.numpy(), axis=1), 1.0, rtol=1e-5)


def test_image_tower_pools_the_last_block_output_without_the_head_conv(tiny_model):
    trunk = tiny_model.image_tower.get_layer("efficientnet_b0")
    names = [layer.name for layer in trunk.layers]
    assert not {"top_conv", "top_bn", "top_activation"} & set(names)  # paper 4.1: no 1x1 head conv
    assert names[-1] == "block7a_project_bn"  # the last MBConv block (depth 0.1: one per stage)
    images = _tf_batch(2)["image"]
    feature_map = trunk(images, training=False)
    assert feature_map.shape[-1] == 80
    pooled = tiny_model.image_features(images)
    np.testing.assert_allclose(pooled.numpy(), tf.reduce_mean(feature_map, axis=[1, 2]).numpy(), rtol=1e-5, atol=1e-6)


def test_embedding_width_from_the_layer_config_b0_to_l2():
    widths = {v: image_feature_dim(ImageTowerConfig(variant=v)) for v in ("B0", "B3", "B5", "B7", "L2")}
    assert widths == {"B0": 320, "B3": 384, "B5": 512, "B7": 640, "L2": 1376}  # B7: ALIGN's 640
    assert image_feature_dim(ImageTowerConfig(variant="B7", projection_dim=256)) == 256
    assert num_blocks(1.0) == 16 and num_blocks(3.1) == 55 and num_blocks(5.3) == 88  # B0, B7, L2
    with pytest.raises(ValueError, match="unknown EfficientNet variant"):
        image_feature_dim(ImageTowerConfig(variant="B9"))


def test_full_width_b0_trunk_ends_in_320_channels_after_16_blocks():
    trunk = build_efficientnet_trunk(ImageTowerConfig(variant="B0", crop_px=32, resize_px=32))
    assert trunk.output.shape[-1] == 320
    assert sum(layer.name.endswith("project_bn") for layer in trunk.layers) == 16


def test_bert_sizes_follow_turc_et_al():
    assert BERT_SIZES["mini"] == (4, 256) and BERT_SIZES["base"] == (12, 768) and BERT_SIZES["large"] == (24, 1024)
    assert bert_dims(TextTowerConfig(size="medium")) == {
        "num_layers": 8, "hidden_dim": 512, "num_heads": 8, "intermediate_dim": 2048}
    with pytest.raises(ValueError, match="unknown BERT size"):
        bert_dims(TextTowerConfig(size="huge"))


def test_text_tower_is_cls_output_through_a_linear_layer(tiny_model):
    batch = _tf_batch(3)
    cls = tiny_model.text_cls_features(batch["token_ids"], batch["padding_mask"])
    encoder = tiny_model.text_encoder.get_layer("bert_encoder")
    sequence = encoder({"token_ids": batch["token_ids"], "segment_ids": tf.zeros_like(batch["token_ids"]),
                        "padding_mask": tf.cast(batch["padding_mask"], tf.int32)})
    np.testing.assert_allclose(cls.numpy(), sequence[:, 0, :].numpy(), rtol=1e-5, atol=1e-6)
    assert cls.shape == (3, 32)
    projected = tiny_model.text_projection(cls)
    want = projected / tf.norm(projected, axis=1, keepdims=True)
    got = tiny_model.embed_texts(batch["token_ids"], batch["padding_mask"])
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
    assert not [v.path for v in tiny_model.variables if "pooled_dense" in v.path]  # NSP pooler left out


def test_padded_positions_do_not_change_the_text_embedding(tiny_model):
    batch = synthetic_batch(2, seed=3)
    other = batch["token_ids"].copy()
    other[~batch["padding_mask"]] = 7  # garbage where the mask is False
    a = tiny_model.embed_texts(batch["token_ids"], batch["padding_mask"])
    b = tiny_model.embed_texts(other, batch["padding_mask"])
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


def test_temperature_is_a_trainable_float32_scalar_initialised_from_config(tiny_model):
    assert tiny_model.temperature.shape == () and tiny_model.temperature.dtype == "float32"
    assert float(tiny_model.temperature.numpy()) == 1.0  # paper 4.1
    assert any(v is tiny_model.temperature for v in tiny_model.trainable_variables)


def test_strategy_kind_from_flags_and_tf_config(monkeypatch):
    two_workers = {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 0}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(two_workers))
    assert num_tf_config_tasks() == 2 and resolve_kind("auto") == "multi_worker"
    assert resolve_kind("auto", tpu="my-tpu") == "tpu"
    monkeypatch.delenv("TF_CONFIG")
    assert resolve_kind("auto") == "one_device"  # no GPU here
    with pytest.raises(ValueError, match="unknown strategy"):
        resolve_kind("parameter_server")
    assert set_precision_policy(build_strategy("one_device"), "auto") == "float32"  # CPU


def test_bfloat16_train_step_on_cpu_and_fail_fast_on_a_non_finite_loss():
    strategy = build_strategy("one_device")
    previous = keras.mixed_precision.global_policy()
    try:
        assert set_precision_policy(strategy, "bfloat16") == "mixed_bfloat16"
        cfg = tiny_train_config(global_batch_size=4, deterministic=False)
        with strategy.scope():
            model = build_dual_encoder(cfg.model, VOCAB_SIZE)
            optimizer = build_optimizer(cfg.optim, model)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    stem = model.image_tower.get_layer("efficientnet_b0").get_layer("stem_conv")
    assert stem.compute_dtype == "bfloat16" and stem.kernel.dtype == "float32"
    attention = model.text_encoder.get_layer("bert_encoder").get_layer("transformer_layer_0")
    assert attention.compute_dtype == "bfloat16"
    batch = _tf_batch(4)
    image_emb, text_emb = model(batch, training=False)
    assert image_emb.dtype == tf.float32 and text_emb.dtype == tf.float32
    assert contrastive_loss(image_emb, text_emb, model.temperature)["loss"].dtype == tf.float32

    nan_batch = dict(batch, image=tf.fill(batch["image"].shape, float("nan")))
    # One tf.data iterator for both calls: the step is traced once.
    batches = iter(tf.data.Dataset.from_tensors(batch).concatenate(tf.data.Dataset.from_tensors(nan_batch)))
    step = make_train_step(model, optimizer, strategy, cfg)
    metrics = step(batches)
    assert np.isfinite(float(metrics["loss"])) and float(metrics["finite"]) == 1.0
    assert float(metrics["learning_rate"]) == pytest.approx(5e-4)  # warm-up step 1 of 2, peak 1e-3
    assert int(optimizer.iterations) == 1
    before = [v.numpy().copy() for v in model.trainable_variables]

    with pytest.raises(tf.errors.InvalidArgumentError, match="non-finite"):
        step(batches)
    assert int(optimizer.iterations) == 1  # the update was not applied
    for old, var in zip(before, model.trainable_variables):
        np.testing.assert_array_equal(old, var.numpy())
    with pytest.raises(NonFiniteLossError, match="step 7"):
        raise_if_not_finite({"loss": float("nan"), "grad_norm": 1.0, "finite": 0.0}, step=7)
