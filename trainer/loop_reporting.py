"""Reporting of the training loop (trainer/train_loop.py): the progress line, the window of
metrics and timings it averages, data time (ArrivalClock) and TensorBoard scalars.

Scalars (WORKDIR/tensorboard): METRIC_NAMES, pairs_per_second, data_time_s, step_time_s; with
skip_corrupt_records also input/skipped_corrupt_records and input/skipped_undecodable_images
(trainer/bad_input.py).
"""
import math
from typing import Dict, Optional

import tensorflow as tf
from tensorflow.core.framework import summary_pb2

METRIC_NAMES = ("loss", "loss_image_to_text", "loss_text_to_image", "temperature",
                "learning_rate", "grad_norm")


def format_progress(step: int, total: int, metrics: Dict[str, float], pairs_per_s: float,
                    data_s: float, step_s: float, eta_s: float,
                    skips: Optional[Dict[str, int]] = None) -> str:
    skipped = (f" | skipped {skips['skipped_corrupt_records']} corrupt records, "
               f"{skips['skipped_undecodable_images']} undecodable images"
               if skips and any(skips.values()) else "")
    return (f"step {step}/{total} | loss {metrics['loss']:.4f} "
            f"(i2t {metrics['loss_image_to_text']:.4f}, t2i {metrics['loss_text_to_image']:.4f}) "
            f"| temp {metrics['temperature']:.4f} | lr {metrics['learning_rate']:.3g} "
            f"| gnorm {metrics['grad_norm']:.3g} | {pairs_per_s:.1f} pairs/s "
            f"| data {ms(data_s)} step {ms(step_s)} | eta {hms(eta_s)}{skipped}")


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.0f} ms" if math.isfinite(seconds) else "n/a"


def hms(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m{seconds % 60:02d}s"


class ArrivalClock:
    """Data time without splitting the step: the input pipeline stamps the wall-clock time at which
    each batch leaves it; the loop's data time is how long after the step call that was (0 when the
    batch was already waiting in the prefetch buffer, i.e. the input keeps up)."""

    def __init__(self):
        with tf.device("/cpu:0"):
            self._arrived = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="arrived")

    def stamp(self, dataset: tf.data.Dataset) -> tf.data.Dataset:
        def stamp_batch(batch):
            with tf.control_dependencies([self._arrived.assign(tf.timestamp())]):
                return tf.nest.map_structure(tf.identity, batch)
        return dataset.map(stamp_batch)

    def last_arrival(self) -> float:
        return float(self._arrived.numpy())


def stamped(clock: Optional[ArrivalClock], dataset: tf.data.Dataset) -> tf.data.Dataset:
    return clock.stamp(dataset) if clock else dataset


class Window:
    """Averages of the metrics and timings since the last log line."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.sums, self.count, self.data_s, self.step_s = {}, 0, 0.0, 0.0

    def add(self, metrics, data_s, step_s):
        for k, v in metrics.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.count += 1
        self.data_s += data_s
        self.step_s += step_s

    def means(self):
        n = max(self.count, 1)
        return ({k: v / n for k, v in self.sums.items()}, self.data_s / n, self.step_s / n)

    def log(self, step: int, total_steps: int, global_batch_size: int, print_fn,
            skips: Dict[str, int]) -> Dict[str, float]:
        """TensorBoard scalars and the progress line of the window's means; resets the window."""
        means, data_s, step_s = self.means()
        wall_s = step_s + (data_s if math.isfinite(data_s) else 0.0)
        pairs_per_s = global_batch_size / max(wall_s, 1e-9)
        write_scalars(step, means, pairs_per_s, data_s, step_s, skips)
        print_fn(format_progress(step, total_steps, means, pairs_per_s, data_s, step_s,
                                 (total_steps - step) * wall_s, skips))
        self.reset()
        return dict(means, step=step, pairs_per_s=pairs_per_s, **skips)


# TensorBoard's scalar plugin metadata, as tensorboard.summary.scalar writes it; built here so that
# training needs only TensorFlow (the `tensorboard` package is needed to view the logs, not to write).
_SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
    data_class=summary_pb2.DATA_CLASS_SCALAR).SerializeToString()


def write_scalar(name: str, value: float, step: int) -> None:
    """One TensorBoard scalar on the default summary writer."""
    tf.summary.write(name, tf.constant(value, tf.float32), step=step, metadata=_SCALAR_METADATA)


def write_scalars(step, means, pairs_per_s, data_s, step_s, skips):
    for name in METRIC_NAMES:
        if name in means:
            write_scalar(name, means[name], step)
    write_scalar("pairs_per_second", pairs_per_s, step)
    if math.isfinite(data_s):
        write_scalar("data_time_s", data_s, step)
    write_scalar("step_time_s", step_s, step)
    for name, count in skips.items():  # skip_corrupt_records only: input/skipped_corrupt_records...
        write_scalar(f"input/{name}", count, step)
