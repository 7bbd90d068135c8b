"""ALIGN dual encoder (paper 4.1): EfficientNet image tower, BERT text tower, learnable temperature.

Both embeddings are L2-normalized float32 vectors of the same width D: the image side is the
global-average-pooled last EfficientNet block (D = its channels, 640 for B7, unless
image.projection_dim is set); the text side is BERT's [CLS] output through a linear layer to D.
The towers run in the global keras dtype policy (mixed_bfloat16 on TPU/GPU, see
trainer/strategy.py); pooling, projections, normalization and the temperature are float32.

Build the model under `strategy.scope()`; every variable exists after `build_dual_encoder` returns.
"""
import keras
import tensorflow as tf

from trainer.image_tower import build_image_tower, image_feature_dim
from trainer.text_tower import build_text_encoder


def l2_normalize(x):
    return tf.math.l2_normalize(tf.cast(x, tf.float32), axis=-1, epsilon=1e-12)


class DualEncoder(keras.Model):
    """Image and text towers plus the shared temperature; see build_dual_encoder."""

    def __init__(self, image_tower, text_encoder, embedding_dim, temperature_init=1.0, **kwargs):
        super().__init__(dtype="float32", **kwargs)  # own ops/variables stay float32 (no autocast)
        self.image_tower = image_tower
        self.text_encoder = text_encoder
        self.embedding_dim = int(embedding_dim)
        # Paper 4.1: "a fully-connected layer with linear activation on top of BERT encoder to
        # match the dimension from the image tower".
        self.text_projection = keras.layers.Dense(self.embedding_dim, dtype="float32", name="text_projection")
        self.text_projection.build((None, text_encoder.output.shape[-1]))
        # Paper 4.1: learnable temperature, initialised at 1.0, shared by both loss directions.
        self.temperature = self.add_weight(
            shape=(), dtype="float32", name="temperature", trainable=True,
            initializer=keras.initializers.Constant(temperature_init))
        self.built = True  # every sub-layer is built above (count_params, summary, checkpoints)

    def image_features(self, images, training=False):
        """Pooled (and optionally projected) image features before normalization, float32 [B, D]."""
        return tf.cast(self.image_tower(images, training=training), tf.float32)

    def text_cls_features(self, token_ids, padding_mask, training=False):
        """BERT's [CLS] output before the projection, float32 [B, H] (word similarity in evaluation)."""
        inputs = {"token_ids": tf.cast(token_ids, tf.int32), "padding_mask": tf.cast(padding_mask, tf.bool)}
        return tf.cast(self.text_encoder(inputs, training=training), tf.float32)

    def embed_images(self, images, training=False):
        """float32 images [B, crop, crop, 3] in [0, 255] -> L2-normalized float32 [B, D]."""
        return l2_normalize(self.image_features(images, training=training))

    def embed_texts(self, token_ids, padding_mask, training=False):
        """int32 token ids [B, L] and bool padding mask [B, L] -> L2-normalized float32 [B, D]."""
        cls = self.text_cls_features(token_ids, padding_mask, training=training)
        return l2_normalize(self.text_projection(cls))

    def call(self, batch, training=False):
        """batch {"image", "token_ids", "padding_mask"} -> (image_emb [B, D], text_emb [B, D])."""
        return (self.embed_images(batch["image"], training=training),
                self.embed_texts(batch["token_ids"], batch["padding_mask"], training=training))


def build_dual_encoder(model_cfg, vocab_size: int) -> DualEncoder:
    """The ALIGN model from a trainer.config.ModelConfig and the WordPiece vocabulary size."""
    return DualEncoder(
        image_tower=build_image_tower(model_cfg.image),
        text_encoder=build_text_encoder(model_cfg.text, vocab_size),
        embedding_dim=image_feature_dim(model_cfg.image),
        temperature_init=model_cfg.temperature_init,
        name="dual_encoder",
    )
