"""A tiny deterministic stand-in for the trainer's export, with the same three signatures.

Images: a histogram over 8 coarse colours (each RGB channel thresholded at 128) in dims 0-7.
Texts: colour words ("black", "red", "green", "yellow", "blue", "magenta", "cyan", "white") add to
the matching colour dim, every other lower-cased token (punctuation splits tokens) adds to one of dims 8..D-1 by hashing.
So "red" retrieves red images, and tests can compute every score by hand.
"""
import json

import tensorflow as tf

COLOURS = ("black", "red", "green", "yellow", "blue", "magenta", "cyan", "white")  # index = 4b + 2g + r
EMBEDDING_DIM = 16
CLS_DIM = 6


class StandInModel(tf.Module):
    def __init__(self):
        super().__init__()
        self.colour_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(COLOURS), tf.range(8, dtype=tf.int64)), -1
        )

    def _image(self, encoded):
        image = tf.image.decode_image(encoded, channels=3, expand_animations=False)
        image = tf.image.resize(image, [8, 8], method="nearest")
        bits = tf.cast(image >= 128, tf.int64)
        colour = bits[..., 0] + 2 * bits[..., 1] + 4 * bits[..., 2]
        hist = tf.math.bincount(tf.reshape(tf.cast(colour, tf.int32), [-1]), minlength=8, maxlength=8)
        return tf.concat([tf.cast(hist, tf.float32), tf.zeros([EMBEDDING_DIM - 8])], 0)

    def _text(self, text):
        tokens = tf.strings.split(tf.strings.regex_replace(tf.strings.lower(text), "[^a-z0-9]+", " "))
        colour = self.colour_table.lookup(tokens)
        hashed = 8 + tf.strings.to_hash_bucket_fast(tokens, EMBEDDING_DIM - 8)
        dims = tf.where(colour >= 0, colour, hashed)
        return tf.reduce_sum(tf.one_hot(dims, EMBEDDING_DIM), axis=0)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def embed_image(self, images):
        emb = tf.map_fn(self._image, images, fn_output_signature=tf.float32)
        return {"embedding": tf.math.l2_normalize(emb, axis=-1)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def embed_text(self, texts):
        emb = tf.map_fn(self._text, texts, fn_output_signature=tf.float32)
        return {"embedding": tf.math.l2_normalize(emb, axis=-1)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def text_cls_features(self, texts):
        emb = tf.map_fn(self._text, texts, fn_output_signature=tf.float32)
        return {"features": emb[:, :CLS_DIM] + emb[:, 8 : 8 + CLS_DIM]}


def save_standin_export(export_dir: str) -> str:
    module = StandInModel()
    tf.saved_model.save(
        module,
        export_dir,
        signatures={
            "embed_image": module.embed_image,
            "embed_text": module.embed_text,
            "text_cls_features": module.text_cls_features,
        },
    )
    info = {"embedding_dim": EMBEDDING_DIM, "config_name": "standin", "step": 0, "crop_px": 8}
    with tf.io.gfile.GFile(export_dir.rstrip("/") + "/align_export.json", "w") as f:  # local or ram://
        json.dump(info, f)
    return export_dir
