"""The learned copy-detection embedder: network, losses, preprocessing and SavedModel export.

Network (SSCD, Pizzi et al., CVPR 2022, "A Self-Supervised Descriptor for Image Copy Detection"):
trunk -> GeM pooling (p = 3) -> linear projection to D -> L2 normalization. The trunk is the same
family as the trainer's image tower: keras.applications' EfficientNet built from its (width, depth,
resolution) coefficients with weights=None (nothing can be downloaded here). Unlike the tower
(trainer/image_tower.py cuts the head's 1x1 conv, ALIGN 4.1) the head conv is kept: it widens the
pooled feature (1280 x width channels) for the cost of a 1x1 conv on a 3x3 map, and SSCD pools a
wide trunk output. This module imports only Keras/TF (dedup/ never imports trainer/).

Losses: InfoNCE over two views per image (SimCLR, Chen et al. 2020; SSCD's form: every other
view in the batch is a negative, temperature 0.05) plus the KoLeo entropy regularizer (SSCD
section 3.3, after Sablayrolles et al. 2019): -mean log distance of each descriptor to its nearest
non-positive neighbour in the batch, which spreads descriptors over the sphere so that a fixed
cosine threshold separates copies from unrelated images.

Preprocessing shared by training and export (`to_model_input`): RGB uint8 of any size -> squashed
to image_px x image_px (bilinear, antialiased; no aspect-preserving crop, so a copy's border or crop
keeps all of its content), float32 in [0, 255]; EfficientNet rescales by 1/255 inside and its input
Normalization layer is the identity with weights=None.
"""
import json
import os
import shutil

import keras
import tensorflow as tf
from keras.src.applications import efficientnet as keras_efficientnet

EXPORT_INFO_FILE = "embedder_info.json"
SIGNATURE = "embed_image"


class GeMPooling(keras.layers.Layer):
    """Generalized mean pooling (Radenovic et al. 2018), p = 3 fixed as in SSCD. Swish activations
    can be slightly negative, so they are clamped at eps first (as SSCD's clamp(min=eps))."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6, **kwargs):
        super().__init__(**kwargs)
        self.p, self.eps = p, eps

    def call(self, x):
        pooled = keras.ops.mean(keras.ops.power(keras.ops.maximum(x, self.eps), self.p), axis=(1, 2))
        return keras.ops.power(pooled, 1.0 / self.p)


def build_embedder(image_px: int, embedding_dim: int, width: float, depth: float,
                   drop_connect_rate: float = 0.0) -> keras.Model:
    """float32 images [B, image_px, image_px, 3] in [0, 255] -> unit vectors [B, embedding_dim]."""
    trunk = keras_efficientnet.EfficientNet(
        width_coefficient=width, depth_coefficient=depth, default_size=image_px,
        drop_connect_rate=drop_connect_rate, include_top=False, weights=None,
        input_shape=(image_px, image_px, 3), name="efficientnet")
    images = keras.Input((image_px, image_px, 3), name="image")
    pooled = GeMPooling(name="gem")(trunk(images))
    projected = keras.layers.Dense(embedding_dim, name="projection")(pooled)
    unit = keras.layers.UnitNormalization(axis=-1, name="l2_normalize")(projected)
    return keras.Model(images, unit, name="copy_embedder")


def to_model_input(rgb, image_px: int):
    """RGB uint8 [H, W, 3] -> float32 [image_px, image_px, 3] in [0, 255]; the same op in the
    training input pipeline and in the export, so both see identically resized pixels."""
    resized = tf.image.resize(tf.cast(rgb, tf.float32), (image_px, image_px),
                              method="bilinear", antialias=True)
    return tf.clip_by_value(resized, 0.0, 255.0)


def decode_on_white(data):
    """Encoded bytes -> RGB uint8 [H, W, 3], alpha composited on white as
    schemas.image_decode.decode_rgb does (TF's decode_image with channels=3 would drop alpha and
    show the colour stored under transparent pixels, often black). JPEG has no alpha; GIF is
    decoded with 3 channels (TF's GIF decoder has no alpha output); PNG, BMP and WebP with 4 (gray,
    gray+alpha and palette+tRNS PNGs are expanded to RGBA by libpng). EXIF orientation is NOT
    applied (TF ignores it; decode_rgb applies it): pass schemas.image_decode.model_input_bytes
    for EXIF-rotated inputs. First frame of animations (expand_animations=False)."""
    is_gif = tf.equal(tf.strings.substr(data, 0, 3), b"GIF")
    has_no_alpha = tf.logical_or(tf.io.is_jpeg(data), is_gif)

    def three_channels():
        return tf.ensure_shape(
            tf.io.decode_image(data, channels=3, expand_animations=False, dtype=tf.uint8),
            [None, None, 3])

    def on_white():
        rgba = tf.ensure_shape(
            tf.io.decode_image(data, channels=4, expand_animations=False, dtype=tf.uint8),
            [None, None, 4])
        rgb = tf.cast(rgba[..., :3], tf.float32)
        alpha = tf.cast(rgba[..., 3:], tf.float32) / 255.0
        return tf.cast(tf.round(rgb * alpha + 255.0 * (1.0 - alpha)), tf.uint8)

    return tf.cond(has_no_alpha, three_channels, on_white)


def infonce_and_koleo(embeddings, temperature: float):
    """embeddings: unit vectors [2B, D], rows 2i and 2i+1 are the two views of image i.

    Returns (InfoNCE, KoLeo) as scalars. InfoNCE: each view must pick its partner among the 2B-1
    other views (symmetric: both views of a pair are anchors). KoLeo: -mean log of the distance to
    the nearest view that is not itself nor its partner (SSCD excludes positives, else the
    regularizer would push copies apart)."""
    n = tf.shape(embeddings)[0]
    index = tf.range(n)
    partner = tf.bitwise.bitwise_xor(index, 1)
    similarity = tf.matmul(embeddings, embeddings, transpose_b=True)
    self_mask = tf.eye(n, dtype=tf.bool)
    logits = tf.where(self_mask, tf.constant(-1e9, similarity.dtype), similarity / temperature)
    infonce = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=partner,
                                                                             logits=logits))
    positive_mask = tf.logical_or(self_mask, tf.one_hot(partner, n, on_value=True, off_value=False))
    # For unit vectors |a - b|^2 = 2 - 2 a.b: the nearest neighbour has the largest cosine.
    nearest_cos = tf.reduce_max(tf.where(positive_mask, tf.constant(-2.0, similarity.dtype),
                                         similarity), axis=1)
    distance = tf.sqrt(tf.maximum(2.0 - 2.0 * nearest_cos, 1e-12))
    koleo = -tf.reduce_mean(tf.math.log(distance + 1e-8))
    return infonce, koleo


class EmbedderExport(tf.Module):
    """`embed_image(images: tf.string [None]) -> {"embedding": float32 [None, D]}` (unit vectors):
    what dedup.embedders.SavedModelEmbedderHandler (`--dedup_embedder DIR`) calls."""

    def __init__(self, model: keras.Model, image_px: int):
        super().__init__()
        self.model = model
        self.image_px = image_px

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
    def embed_image(self, images):
        pixels = tf.map_fn(lambda data: to_model_input(decode_on_white(data), self.image_px),
                           images, fn_output_signature=tf.TensorSpec(
                               [self.image_px, self.image_px, 3], tf.float32))
        # An empty batch skips the network (oneDNN's conv returns its input unchanged for N=0).
        embedding = tf.cond(
            tf.size(images) > 0, lambda: tf.cast(self.model(pixels, training=False), tf.float32),
            lambda: tf.zeros([0, self.model.output_shape[-1]], tf.float32))
        return {"embedding": tf.math.l2_normalize(embedding, axis=-1)}


def export(model: keras.Model, image_px: int, export_dir: str, info: dict) -> None:
    """Writes the SavedModel to a temporary sibling and renames it into place, so a killed export
    never leaves a half-written model where `--dedup_embedder` points."""
    tmp_dir = f"{export_dir.rstrip('/')}.tmp-{os.getpid()}"
    shutil.rmtree(tmp_dir, ignore_errors=True)
    module = EmbedderExport(model, image_px)
    tf.saved_model.save(module, tmp_dir, signatures={SIGNATURE: module.embed_image})
    with open(os.path.join(tmp_dir, EXPORT_INFO_FILE), "w") as f:
        json.dump(info, f, indent=2)
    shutil.rmtree(export_dir, ignore_errors=True)
    os.replace(tmp_dir, export_dir)
