"""A tiny curated set for trainer tests: schema TFRecords of generated JPEGs plus a WordPiece vocab."""
import io
import os
from typing import List, Tuple

import numpy as np
import tensorflow as tf
from PIL import Image

from schemas import example_schema

RESERVED = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["a", "red", "green", "blue", "cat", "dog", "photo", "of", "the", "drawing", "emoji",
         "face", "smiling", "tree", "house", "car", "##s", "##ing"]
COLOURS = {"red": (220, 20, 20), "green": (20, 200, 40), "blue": (30, 40, 230)}
ANIMALS = ["cat", "dog", "tree", "house", "car"]


def write_vocab(path: str) -> List[str]:
    tokens = RESERVED + WORDS
    with open(path, "w") as f:
        f.write("\n".join(tokens) + "\n")
    return tokens


def jpeg_bytes(rgb: Tuple[int, int, int], width: int, height: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(rgb)[None, None, :] + rng.integers(-20, 20, (height, width, 3)),
                     0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=90)
    return out.getvalue()


def pair(i: int) -> Tuple[str, Tuple[int, int, int]]:
    colour = list(COLOURS)[i % 3]
    return f"a photo of a {colour} {ANIMALS[i % len(ANIMALS)]}", COLOURS[colour]


def write_tfrecords(directory: str, num_examples: int = 24, num_shards: int = 3,
                    size_px: Tuple[int, int] = (96, 80)) -> str:
    """Writes train-SSSSS-of-NNNNN.tfrecord shards; returns their glob."""
    os.makedirs(directory, exist_ok=True)
    writers = [tf.io.TFRecordWriter(
        os.path.join(directory, f"train-{s:05d}-of-{num_shards:05d}.tfrecord"))
        for s in range(num_shards)]
    width, height = size_px
    for i in range(num_examples):
        text, rgb = pair(i)
        example = example_schema.make_example(
            image_jpeg=jpeg_bytes(rgb, width, height, seed=i), height=height, width=width,
            text=text, raw_text=text.upper(), key=f"k{i:04d}")
        writers[i % num_shards].write(example.SerializeToString())
    for w in writers:
        w.close()
    return os.path.join(directory, "train-*.tfrecord")
