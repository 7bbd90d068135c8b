"""Tiny ALIGN configs and synthetic batches for the model/loss/optimizer/distribution tests."""
import numpy as np

from trainer.config import ImageTowerConfig, ModelConfig, OptimConfig, TextTowerConfig, TrainConfig

VOCAB_SIZE = 50
CROP_PX = 32
MAX_TOKENS = 8


def tiny_model_config(deterministic: bool = False) -> ModelConfig:
    """EfficientNet-B0 at width 0.25 / depth 0.1 (7 blocks, 80 channels) + a 1-layer BERT of width 32.

    deterministic: no dropout / drop-connect and batch statistics over all replicas, so that a
    multi-replica step equals the single-device step exactly (training mode included).
    """
    return ModelConfig(
        image=ImageTowerConfig(variant="B0", width_coefficient=0.25, depth_coefficient=0.1,
                               resize_px=CROP_PX, crop_px=CROP_PX,
                               drop_connect_rate=0.0 if deterministic else 0.2,
                               sync_batch_norm=deterministic),
        text=TextTowerConfig(size="tiny", num_layers=1, hidden_dim=32, num_heads=2, intermediate_dim=64,
                             max_tokens=MAX_TOKENS, dropout_rate=0.0 if deterministic else 0.1),
    )


def tiny_train_config(global_batch_size: int = 8, deterministic: bool = True) -> TrainConfig:
    return TrainConfig(model=tiny_model_config(deterministic),
                       optim=OptimConfig(warmup_steps=2, total_steps=10, grad_clip_norm=1.0),
                       global_batch_size=global_batch_size)


def synthetic_batch(batch_size: int, seed: int = 0) -> dict:
    """numpy batch {"image" float32 [B, 32, 32, 3] in [0, 255], "token_ids", "padding_mask"}."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, MAX_TOKENS + 1, size=batch_size)
    padding_mask = np.arange(MAX_TOKENS)[None, :] < lengths[:, None]
    token_ids = np.where(padding_mask, rng.integers(4, VOCAB_SIZE, size=(batch_size, MAX_TOKENS)), 0)
    token_ids[:, 0] = 2  # [CLS]
    return {"image": rng.uniform(0, 255, size=(batch_size, CROP_PX, CROP_PX, 3)).astype(np.float32),
            "token_ids": token_ids.astype(np.int32), "padding_mask": padding_mask}
