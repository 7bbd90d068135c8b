"""The per-replica train step: forward, contrastive loss, gradients, all-reduce, clip, LAMB apply.

Gradients: each replica differentiates its share of the loss (trainer/loss.py: the shares sum to the
global-batch mean), the shares' gradients are summed over replicas once here, the global norm is
measured on the summed gradient (the "grad_norm" metric), optionally clipped by that norm
(train_cfg.optim.grad_clip_norm), and applied by the optimizer without a second reduction.

Non-finite loss or gradient norm: on CPU/GPU an in-graph assertion stops the step BEFORE the update
(step_fn raises tf.errors.InvalidArgumentError mentioning "non-finite"); on TPU, where assertions
cannot run inside the compiled step, the returned "finite" metric is 0 and the loop must raise:
`raise_if_not_finite(metrics, step)` does it for both.
"""
import math

import tensorflow as tf

from trainer.loss import contrastive_loss

METRIC_NAMES = ("loss", "loss_image_to_text", "loss_text_to_image", "temperature", "learning_rate",
                "grad_norm", "finite")


class NonFiniteLossError(RuntimeError):
    pass


def compute_loss_and_gradients(model, batch, label_smoothing, global_batch_size, training=True):
    """This replica's loss share (dict) and the gradients of loss["loss"] w.r.t. trainable variables."""
    variables = model.trainable_variables
    with tf.GradientTape() as tape:
        image_emb, text_emb = model(batch, training=training)
        losses = contrastive_loss(image_emb, text_emb, model.temperature,
                                  label_smoothing=label_smoothing, global_batch_size=global_batch_size)
    grads = tape.gradient(losses["loss"], variables)
    # Dense gradients (embedding tables give IndexedSlices): dense all-reduce, LAMB needs norms.
    grads = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]
    missing = [v.path for v, g in zip(variables, grads) if g is None]
    if missing:
        raise ValueError(f"no gradient for {missing}")
    return losses, grads


def _sum_over_replicas(values):
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return values
    return context.all_reduce(tf.distribute.ReduceOp.SUM, values)


def make_train_step(model, optimizer, strategy, train_cfg, steps_per_call: int = 1):
    """step_fn(iterator) -> dict of float32 scalars (METRIC_NAMES), a tf.function.

    Runs `steps_per_call` steps per call (more than 1 saves host round trips on TPU); the metrics
    are those of the last step. "learning_rate" is the rate used by that step's update.
    """
    clip_norm = train_cfg.optim.grad_clip_norm
    on_tpu = isinstance(strategy, tf.distribute.TPUStrategy)
    if getattr(optimizer, "sum_gradients_across_replicas", True):
        raise ValueError("the train step sums gradients over replicas itself; build the optimizer with "
                         "trainer.optimizer.build_optimizer (sum_gradients_across_replicas=False)")
    with strategy.scope():
        optimizer.build(model.trainable_variables)  # no-op when already built

    def replica_step(batch):
        variables = model.trainable_variables
        losses, grads = compute_loss_and_gradients(
            model, batch, train_cfg.label_smoothing, train_cfg.global_batch_size)
        losses = _sum_over_replicas(losses)
        grads = _sum_over_replicas(list(grads))
        grad_norm = tf.linalg.global_norm(grads)
        finite = tf.math.logical_and(tf.math.is_finite(losses["loss"]), tf.math.is_finite(grad_norm))
        checks = [] if on_tpu else [tf.debugging.Assert(finite, ["non-finite loss or gradient norm:",
                                                                 losses["loss"], grad_norm])]
        with tf.control_dependencies(checks):
            if clip_norm:
                grads, _ = tf.clip_by_global_norm(grads, clip_norm, use_norm=grad_norm)
            learning_rate = tf.cast(optimizer.learning_rate, tf.float32)
            temperature = tf.identity(tf.cast(model.temperature, tf.float32))
            optimizer.apply_gradients(zip(grads, variables))
        return dict(losses, temperature=temperature, learning_rate=learning_rate,
                    grad_norm=grad_norm, finite=tf.cast(finite, tf.float32))

    def one_step(iterator):
        per_replica = strategy.run(replica_step, args=(next(iterator),))
        # Every replica holds the same (already summed) values: take the first local one.
        return {k: strategy.experimental_local_results(v)[0] for k, v in per_replica.items()}

    @tf.function
    def step_fn(iterator):
        metrics = one_step(iterator)
        if steps_per_call > 1:
            for _ in tf.range(steps_per_call - 1):
                metrics = one_step(iterator)
        return metrics

    return step_fn


def raise_if_not_finite(metrics, step) -> None:
    """Fail fast: raise NonFiniteLossError when a step reported a non-finite loss or gradient."""
    loss = float(metrics["loss"])
    if float(metrics.get("finite", 1.0)) < 1.0 or not math.isfinite(loss):
        raise NonFiniteLossError(f"non-finite loss ({loss}) or gradient norm "
                                 f"({float(metrics['grad_norm'])}) at step {step}")
