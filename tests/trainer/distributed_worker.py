"""Subprocess body of tests/trainer/test_distributed.py (TF's device setup is per process).

python -m tests.trainer.distributed_worker two_replicas OUT.json
    two logical CPU devices, MirroredStrategy.
TF_CONFIG=... python -m tests.trainer.distributed_worker multi_worker OUT.json
    one of the MultiWorkerMirroredStrategy workers (one CPU replica each).

Both compare, on the same global batch and the same initial weights, the distributed run against
one device without any strategy. two_replicas: summed loss shares and summed per-variable gradients
of one forward/backward pass, then the metrics and all weights after one full train step (LAMB,
clipping). multi_worker: the loss and global gradient norm of one full train step. Values go to
OUT.json; the test asserts on them.
"""
import json
import sys

import numpy as np
import tensorflow as tf

GLOBAL_BATCH = 8
COLLECTIVE_TIMEOUT_S = 60


def _max_abs_diff(a_list, b_list):
    return max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in zip(a_list, b_list))


def compare_with_one_device(strategy, full_comparison=True):
    import keras
    from tests.trainer.tiny_model import VOCAB_SIZE, synthetic_batch, tiny_train_config
    from trainer.model import build_dual_encoder
    from trainer.optimizer import build_optimizer
    from trainer.train_step import compute_loss_and_gradients, make_train_step

    cfg = tiny_train_config(GLOBAL_BATCH, deterministic=True)
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = build_dual_encoder(cfg.model, VOCAB_SIZE)
        optimizer = build_optimizer(cfg.optim, model)
    reference = build_dual_encoder(cfg.model, VOCAB_SIZE)
    reference.set_weights(model.get_weights())
    reference_optimizer = build_optimizer(cfg.optim, reference)
    batch = synthetic_batch(GLOBAL_BATCH, seed=1)

    def dataset_fn(context):  # this input pipeline's rows, then per-replica batches, repeated
        rows = GLOBAL_BATCH // context.num_input_pipelines
        start = context.input_pipeline_id * rows
        shard = {k: v[start:start + rows] for k, v in batch.items()}
        per_replica = context.get_per_replica_batch_size(GLOBAL_BATCH)
        return tf.data.Dataset.from_tensor_slices(shard).batch(per_replica, drop_remainder=True).repeat()

    iterator = iter(strategy.distribute_datasets_from_function(dataset_fn))

    @tf.function
    def distributed_loss_and_gradients(iterator):
        losses, grads = strategy.run(
            lambda b: compute_loss_and_gradients(model, b, cfg.label_smoothing, GLOBAL_BATCH),
            args=(next(iterator),))
        total = lambda v: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
        return {k: total(v) for k, v in losses.items()}, [total(g) for g in grads]

    ref_losses, ref_grads = compute_loss_and_gradients(
        reference, {k: tf.constant(v) for k, v in batch.items()}, cfg.label_smoothing, GLOBAL_BATCH)
    result = {"num_replicas": strategy.num_replicas_in_sync,
              "reference_loss": float(ref_losses["loss"]),
              "reference_grad_norm": float(tf.linalg.global_norm(ref_grads)),
              "max_grad": max(float(np.max(np.abs(g))) for g in ref_grads)}
    if full_comparison:  # per-variable gradients of one forward/backward pass
        losses, grads = distributed_loss_and_gradients(iterator)
        result["loss_diffs"] = [abs(float(losses[k]) - float(ref_losses[k])) for k in losses]
        result["max_grad_diff"] = _max_abs_diff(grads, ref_grads)

    metrics = make_train_step(model, optimizer, strategy, cfg)(iterator)
    result.update({
        "step_loss": float(metrics["loss"]),
        "step_grad_norm": float(metrics["grad_norm"]),
        "step_iterations": int(optimizer.iterations.numpy()),
        "weights_checksum": float(sum(np.sum(np.abs(w)) for w in model.get_weights())),
    })
    if full_comparison:  # the same train step on one device
        ref_step = make_train_step(reference, reference_optimizer, tf.distribute.get_strategy(), cfg)
        ref_metrics = ref_step(iter(tf.data.Dataset.from_tensors(batch).repeat()))
        result["step_metric_diffs"] = {k: abs(float(metrics[k]) - float(ref_metrics[k])) for k in metrics}
        result["max_weight_diff_after_step"] = _max_abs_diff(model.get_weights(), reference.get_weights())
    return result


def main(mode, out_path):
    from trainer.strategy import build_strategy
    # Test speed only: grappler's graph rewrites cost ~20 s of CPU on these one-shot graphs.
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    if mode == "two_replicas":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
        strategy = build_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
    elif mode == "multi_worker":
        strategy = build_strategy("auto", collective_timeout_s=COLLECTIVE_TIMEOUT_S)  # from TF_CONFIG
        assert isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy), type(strategy)
    else:
        raise SystemExit(f"unknown mode {mode}")
    # Multi-worker: the train step's loss and gradient norm against one device (one trace less).
    result = compare_with_one_device(strategy, full_comparison=(mode == "two_replicas"))
    is_multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    result["strategy"] = "MultiWorkerMirroredStrategy" if is_multi_worker else type(strategy).__name__
    with open(out_path, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
