"""tf.train.Example layout of one curated image/alt-text pair.

Written by `align-curate` to `tfrecords/train-?????-of-?????.tfrecord`, read by the trainer,
the evaluation tools and the search index. Changing a key (names in schemas/example_wire.py, with
the TF-free writer) changes the contract for every package: add features, never rename or drop them.
"""
from typing import Mapping

import tensorflow as tf

from schemas.example_wire import (  # noqa: F401  (names live in the TF-free module)
    IMAGE_ENCODED,
    IMAGE_FORMAT,
    IMAGE_HEIGHT,
    IMAGE_SHA256,
    IMAGE_WIDTH,
    KEY,
    ORIGINAL_HEIGHT,
    ORIGINAL_WIDTH,
    RAW_TEXT,
    TEXT,
    URL,
    serialize_example,
)

FEATURE_SPEC = {
    IMAGE_ENCODED: tf.io.FixedLenFeature([], tf.string),
    IMAGE_FORMAT: tf.io.FixedLenFeature([], tf.string, default_value=b"jpeg"),
    IMAGE_HEIGHT: tf.io.FixedLenFeature([], tf.int64),
    IMAGE_WIDTH: tf.io.FixedLenFeature([], tf.int64),
    ORIGINAL_HEIGHT: tf.io.FixedLenFeature([], tf.int64, default_value=0),
    ORIGINAL_WIDTH: tf.io.FixedLenFeature([], tf.int64, default_value=0),
    IMAGE_SHA256: tf.io.FixedLenFeature([], tf.string, default_value=b""),
    TEXT: tf.io.FixedLenFeature([], tf.string),
    RAW_TEXT: tf.io.FixedLenFeature([], tf.string, default_value=b""),
    KEY: tf.io.FixedLenFeature([], tf.string),
    URL: tf.io.FixedLenFeature([], tf.string, default_value=b""),
}


def make_example(**fields) -> tf.train.Example:
    """The Example of one kept pair, as a proto; arguments and bytes as
    `example_wire.serialize_example`, the one place that maps the fields to features."""
    return tf.train.Example.FromString(serialize_example(**fields))


def parse_example(serialized: tf.Tensor) -> Mapping[str, tf.Tensor]:
    """tf.data map function: one serialized Example (scalar string) to its feature tensors."""
    return tf.io.parse_single_example(serialized, FEATURE_SPEC)


def parse_example_dict(serialized: bytes) -> dict:
    """Eager, plain-Python parse (for tools and tests): bytes fields as bytes, ints as int."""
    example = tf.train.Example.FromString(serialized)
    out = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        values = list(getattr(feature, kind).value)
        out[name] = values[0] if values else None
    return out
