"""tf.distribute strategy and keras precision policy from flags.

kind="auto": TPUStrategy when a TPU is named (--tpu), MultiWorkerMirroredStrategy when TF_CONFIG
lists more than one task, MirroredStrategy with more than one GPU, else one device (GPU:0 or CPU:0).
"""
import json
import os
from typing import Optional, Sequence

import keras
import tensorflow as tf

STRATEGY_KINDS = ("auto", "tpu", "multi_worker", "mirrored", "one_device")


def num_tf_config_tasks(tf_config: Optional[str] = None) -> int:
    """Number of chief + worker tasks in TF_CONFIG (0 when unset)."""
    raw = os.environ.get("TF_CONFIG", "") if tf_config is None else tf_config
    if not raw:
        return 0
    cluster = json.loads(raw).get("cluster", {})
    return len(cluster.get("chief", [])) + len(cluster.get("worker", []))


def resolve_kind(kind: str = "auto", tpu: Optional[str] = None) -> str:
    if kind not in STRATEGY_KINDS:
        raise ValueError(f"unknown strategy {kind!r}; choose one of {STRATEGY_KINDS}")
    if kind != "auto":
        return kind
    if tpu:
        return "tpu"
    if num_tf_config_tasks() > 1:
        return "multi_worker"
    if len(tf.config.list_physical_devices("GPU")) > 1:
        return "mirrored"
    return "one_device"


def build_strategy(kind: str = "auto", tpu: Optional[str] = None,
                   devices: Optional[Sequence[str]] = None,
                   collective_timeout_s: Optional[float] = None) -> tf.distribute.Strategy:
    """The strategy to build the model, optimizer and datasets under.

    tpu: TPU name or grpc address ("local" on a TPU VM). devices: explicit device list for
    "mirrored" (e.g. two logical CPUs in tests). collective_timeout_s: multi-worker collectives
    fail after this long instead of waiting forever for a lost peer.
    """
    kind = resolve_kind(kind, tpu)
    if kind == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "local")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    if kind == "multi_worker":
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=collective_timeout_s)
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy(devices=list(devices) if devices else None)
    device = "/gpu:0" if tf.config.list_physical_devices("GPU") else "/cpu:0"
    return tf.distribute.OneDeviceStrategy(device)


def _accelerated(strategy: tf.distribute.Strategy) -> bool:
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return True
    return any("GPU" in d.upper() or "TPU" in d.upper() for d in strategy.extended.worker_devices)


def set_precision_policy(strategy: tf.distribute.Strategy, mixed_precision: str = "auto") -> str:
    """Set keras' global dtype policy before building the model; returns the policy name.

    "auto": mixed_bfloat16 on TPU/GPU (bfloat16 compute, float32 variables), float32 on CPU.
    "bfloat16" forces mixed_bfloat16 (works on CPU too, for smoke tests), "float32" forces float32.
    Embeddings, logits and the loss are float32 in every case (trainer/model.py, trainer/loss.py).
    """
    if mixed_precision == "auto":
        policy = "mixed_bfloat16" if _accelerated(strategy) else "float32"
    elif mixed_precision in ("bfloat16", "mixed_bfloat16"):
        policy = "mixed_bfloat16"
    elif mixed_precision == "float32":
        policy = "float32"
    else:
        raise ValueError(f"mixed_precision must be auto, bfloat16 or float32, got {mixed_precision!r}")
    keras.mixed_precision.set_global_policy(policy)
    return policy
