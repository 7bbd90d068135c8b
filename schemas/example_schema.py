"""tf.train.Example layout of one curated image/alt-text pair.

Written by `align-curate` to `tfrecords/train-?????-of-?????.tfrecord`, read by the trainer,
the evaluation tools and the search index. Changing a key here changes the contract for every
package: add features, never rename or drop them.
"""
from typing import Mapping

import tensorflow as tf

IMAGE_ENCODED = "image/encoded"  # JPEG bytes, RGB, shorter side at most the stored size
IMAGE_FORMAT = "image/format"  # always b"jpeg"
IMAGE_HEIGHT = "image/height"  # pixels of the stored JPEG
IMAGE_WIDTH = "image/width"
ORIGINAL_HEIGHT = "image/original_height"  # pixels of the source image (after EXIF orientation)
ORIGINAL_WIDTH = "image/original_width"
IMAGE_SHA256 = "image/sha256"  # hex SHA-256 of the source bytes: the identity of "the same image"
TEXT = "text"  # normalized alt-text (see pipeline/text_normalize.py)
RAW_TEXT = "text/raw"  # alt-text as found in the input, decoded as UTF-8
KEY = "key"  # unique id of the pair in the input corpus
URL = "url"

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


def _bytes(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int64(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def make_example(
    *,
    image_jpeg: bytes,
    height: int,
    width: int,
    text: str,
    raw_text: str,
    key: str,
    url: str = "",
    original_height: int = 0,
    original_width: int = 0,
    image_sha256: str = "",
) -> tf.train.Example:
    """Builds the Example of one kept pair (plain Python, used in Beam workers)."""
    feature = {
        IMAGE_ENCODED: _bytes(image_jpeg),
        IMAGE_FORMAT: _bytes(b"jpeg"),
        IMAGE_HEIGHT: _int64(height),
        IMAGE_WIDTH: _int64(width),
        ORIGINAL_HEIGHT: _int64(original_height),
        ORIGINAL_WIDTH: _int64(original_width),
        IMAGE_SHA256: _bytes(image_sha256.encode("ascii")),
        TEXT: _bytes(text.encode("utf-8")),
        RAW_TEXT: _bytes(raw_text.encode("utf-8")),
        KEY: _bytes(key.encode("utf-8")),
        URL: _bytes(url.encode("utf-8")),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature))


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
