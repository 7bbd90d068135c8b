"""EfficientNet image tower (paper 4.1): global average pooling of the last block's output.

ALIGN pools the output of EfficientNet's last MBConv block directly; the head's 1x1 conv (1280 x
width channels), its batch norm and activation are NOT part of the tower, so the embedding width is
the last block's channel count: 320 for B0, 384 for B3, 640 for B7, 1376 for L2.

The network is keras.applications' EfficientNet (weights=None: trained from scratch), built from
its (width, depth, resolution) coefficients, which is also how EfficientNet-L2 (Xie et al. 2020,
Noisy Student: width 4.3, depth 5.3, 800 px) is obtained: keras ships no L2 constructor, but L2 is
the same MBConv network at those coefficients (480M parameters; only practical on TPU pods).
"""
import math

import keras
from keras.src.applications import efficientnet as keras_efficientnet

# (width_coefficient, depth_coefficient, default resolution px), Tan & Le 2019 (B0-B7) and
# Xie et al. 2020 (L2).
EFFICIENTNET_COEFFICIENTS = {
    "B0": (1.0, 1.0, 224),
    "B1": (1.0, 1.1, 240),
    "B2": (1.1, 1.2, 260),
    "B3": (1.2, 1.4, 300),
    "B4": (1.4, 1.8, 380),
    "B5": (1.6, 2.2, 456),
    "B6": (1.8, 2.6, 528),
    "B7": (2.0, 3.1, 600),
    "L2": (4.3, 5.3, 800),
}
DEPTH_DIVISOR = 8  # EfficientNet rounds channel counts to multiples of 8
HEAD_CONV_LAYER = "top_conv"  # keras' name for the head's 1x1 conv, cut off (paper 4.1)


def round_filters(filters: int, width_coefficient: float, divisor: int = DEPTH_DIVISOR) -> int:
    """EfficientNet's channel rounding, identical to keras.applications' (and the reference TPU code)."""
    scaled = filters * width_coefficient
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:  # never round down by more than 10%
        rounded += divisor
    return int(rounded)


def round_repeats(repeats: int, depth_coefficient: float) -> int:
    return int(math.ceil(depth_coefficient * repeats))


def coefficients(image_cfg) -> tuple:
    """(width, depth) of the configured variant, with the config's overrides applied."""
    variant = image_cfg.variant.upper()
    if variant not in EFFICIENTNET_COEFFICIENTS:
        raise ValueError(f"unknown EfficientNet variant {image_cfg.variant!r}; "
                         f"choose one of {sorted(EFFICIENTNET_COEFFICIENTS)}")
    width, depth, _ = EFFICIENTNET_COEFFICIENTS[variant]
    if image_cfg.width_coefficient is not None:
        width = image_cfg.width_coefficient
    if image_cfg.depth_coefficient is not None:
        depth = image_cfg.depth_coefficient
    return width, depth


def last_block_channels(width_coefficient: float) -> int:
    """Channels of the last MBConv block's output = the pooled feature width (no network built)."""
    return round_filters(keras_efficientnet.DEFAULT_BLOCKS_ARGS[-1]["filters_out"], width_coefficient)


def num_blocks(depth_coefficient: float) -> int:
    return sum(round_repeats(a["repeats"], depth_coefficient)
               for a in keras_efficientnet.DEFAULT_BLOCKS_ARGS)


def image_feature_dim(image_cfg) -> int:
    """Width of the image tower's output: the projection size if set, else the last block's channels."""
    if image_cfg.projection_dim:
        return int(image_cfg.projection_dim)
    return last_block_channels(coefficients(image_cfg)[0])


def _synchronize_batch_norm(model: keras.Model) -> keras.Model:
    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, keras.layers.BatchNormalization):
            config["synchronized"] = True
        return layer.__class__.from_config(config)
    return keras.models.clone_model(model, clone_function=clone)


def build_efficientnet_trunk(image_cfg, name: str = "efficientnet") -> keras.Model:
    """images float [B, crop, crop, 3] in [0, 255] -> last block's feature map [B, h, w, C].

    keras' EfficientNet rescales by 1/255 inside; its input Normalization layer stays the identity
    with weights=None (no ImageNet statistics), and the stem batch norm learns the scale.
    """
    width, depth = coefficients(image_cfg)
    full = keras_efficientnet.EfficientNet(
        width_coefficient=width,
        depth_coefficient=depth,
        default_size=image_cfg.crop_px,
        drop_connect_rate=image_cfg.drop_connect_rate,
        include_top=False,
        weights=None,
        input_shape=(image_cfg.crop_px, image_cfg.crop_px, 3),
        name=name,
    )
    last_block_output = full.get_layer(HEAD_CONV_LAYER).input  # paper 4.1: no head 1x1 conv
    trunk = keras.Model(full.input, last_block_output, name=name)
    if image_cfg.sync_batch_norm:
        trunk = _synchronize_batch_norm(trunk)
    set_batch_norm_momentum(trunk, image_cfg.batch_norm_momentum)
    return trunk


def batch_norm_layers(model: keras.Model) -> list:
    """Every BatchNormalization inside `model`, nested models included."""
    return [l for l in model._flatten_layers() if isinstance(l, keras.layers.BatchNormalization)]


def set_batch_norm_momentum(model: keras.Model, momentum: float) -> int:
    """Sets the moving-statistics momentum of every BatchNormalization in `model` (keras reads it at
    each call); returns how many layers were set."""
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"batch_norm_momentum must be in [0, 1), got {momentum}")
    layers = batch_norm_layers(model)
    for layer in layers:
        layer.momentum = momentum
    return len(layers)


def build_image_tower(image_cfg, name: str = "image_tower") -> keras.Model:
    """images float32 [B, crop, crop, 3] in [0, 255] -> float32 features [B, image_feature_dim]."""
    images = keras.Input((image_cfg.crop_px, image_cfg.crop_px, 3), name="image")
    features = build_efficientnet_trunk(image_cfg, name=f"efficientnet_{image_cfg.variant.lower()}")(images)
    # Pooling and the optional projection run in float32 under a mixed policy.
    pooled = keras.layers.GlobalAveragePooling2D(dtype="float32", name="last_block_avg_pool")(features)
    if image_cfg.projection_dim:
        pooled = keras.layers.Dense(image_cfg.projection_dim, dtype="float32", name="image_projection")(pooled)
    return keras.Model(images, pooled, name=name)
