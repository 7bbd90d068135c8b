"""Precise BatchNorm statistics for inference (Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm",
section 3; pycls/detectron2's PreciseBN), computed before every in-loop evaluation and before the
final checkpoint that the export is made from.

Why: in training mode every BatchNorm normalizes with the batch's own statistics; inference (the
export, evaluation, search, dedup) uses the moving averages, which lag behind the weights: with
EfficientNet's momentum 0.99 they average over the last ~100 steps of changing weights. The last
block's BatchNorm feeds the pooled embedding directly (paper 4.1: no head conv), so any stale
offset there is added to every image's embedding. Measured on the parity benchmark (docs/TRAINING.md):
after 296 steps the held-out image embeddings had a mean pairwise cosine of 0.92-1.00 (effective
rank 1.3) in inference mode while training mode separated the same images.

How: with the weights frozen, `num_batches` training batches go through the image tower in
training mode (batch statistics, as during training); each BatchNorm's input mean and variance
over (batch, height, width) are averaged with equal weight over the batches (and replicas) and
written into its moving_mean / moving_variance. Nothing else changes: no gradient, no optimizer
step, the weights are untouched.
"""
import keras
import tensorflow as tf

from trainer.image_tower import batch_norm_layers


def _functional_with_batch_norms(model: keras.Model):
    """(functional sub-model that owns BatchNorms, its BatchNorm layers), searching nested models."""
    own = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    if own:
        return model, own
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found = _functional_with_batch_norms(layer)
            if found[1]:
                return found
    return model, []


class BatchNormRecalibrator:
    """Recomputes the moving statistics of every BatchNorm of the image tower (see module doc)."""

    def __init__(self, image_tower: keras.Model, strategy: tf.distribute.Strategy):
        trunk, self.layers = _functional_with_batch_norms(image_tower)
        if len(self.layers) != len(batch_norm_layers(image_tower)):
            raise ValueError("BatchNorm layers outside the image tower's trunk are not supported")
        self.strategy = strategy
        self._inputs_model = keras.Model(trunk.inputs, [l.input for l in self.layers]) if self.layers else None
        self._stats_fn = None

    def _stats(self):
        def replica_stats(images):  # the trunk takes the tower's input (trainer/image_tower.py)
            inputs = self._inputs_model(images, training=True)
            means, variances = [], []
            for x in inputs:
                mean, variance = tf.nn.moments(tf.cast(x, tf.float32), axes=[0, 1, 2])
                means.append(mean)
                variances.append(variance)
            return means, variances

        @tf.function
        def stats(batch):
            means, variances = self.strategy.run(replica_stats, args=(batch["image"],))
            mean_of = lambda v: self.strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
            return [mean_of(m) for m in means], [mean_of(v) for v in variances]
        return stats

    def recalibrate(self, iterator, num_batches: int) -> int:
        """Averages the statistics of `num_batches` batches of `iterator` (a distributed training
        iterator) into the moving statistics; returns the number of BatchNorm layers set."""
        if not self.layers or num_batches <= 0:
            return 0
        if self._stats_fn is None:
            self._stats_fn = self._stats()
        sums_mean = sums_var = None
        for _ in range(num_batches):
            means, variances = self._stats_fn(next(iterator))
            if sums_mean is None:
                sums_mean, sums_var = list(means), list(variances)
            else:
                sums_mean = [a + b for a, b in zip(sums_mean, means)]
                sums_var = [a + b for a, b in zip(sums_var, variances)]
        for layer, total_mean, total_var in zip(self.layers, sums_mean, sums_var):
            layer.moving_mean.assign(tf.cast(total_mean / num_batches, layer.moving_mean.dtype))
            layer.moving_variance.assign(tf.cast(total_var / num_batches, layer.moving_variance.dtype))
        return len(self.layers)

