"""EfficientNet image tower (paper 4.1): global average pooling of the last block's output.

ALIGN pools the output of EfficientNet's last MBConv block directly; the head's 1x1 conv (1280 x
width channels), its batch norm and activation are NOT part of the tower, so the embedding width is
the last block's channel count: 320 for B0, 384 for B3, 640 for B7, 1376 for L2.

The network is keras.applications' EfficientNet (weights=None: trained from scratch), built from
its (width, depth, resolution) coefficients, which is also how EfficientNet-L2 (Xie et al. 2020,
Noisy Student: width 4.3, depth 5.3, 800 px) is obtained: keras ships no L2 constructor, but L2 is
the same MBConv network at those coefficients (480M parameters; only practical on TPU pods).

`ImageTowerConfig.init_weights` starts the network from a Keras weights file instead (ImageNet
weights saved on a machine with internet: docs/TRAINING.md, "Starting from pretrained weights"),
checked layer by layer against the tower (load_init_weights).
"""
import math

import h5py
import keras
import numpy as np
import tensorflow as tf
from keras.src.applications import efficientnet as keras_efficientnet
from keras.src.utils import naming as keras_naming

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


class InitWeightsError(ValueError):
    """model.image.init_weights does not fit the configured EfficientNet (names file and layer)."""


def weights_file_keys(model: keras.Model) -> list:
    """[(layer, "layers/<key>")] of `model`'s layers, as keras writes them into a .weights.h5 file:
    keyed by class name and position (conv2d, conv2d_1, ...), not by layer name."""
    used, keys = {}, []
    for layer in model.layers:
        name = keras_naming.to_snake_case(layer.__class__.__name__)
        if name in used:
            used[name] += 1
            name = f"{name}_{used[name]}"
        else:
            used[name] = 0
        keys.append((layer, f"layers/{name}"))
    return keys


def _stored_variables(h5, key: str):
    """The arrays of the layer stored under `key`, in variable order; None if it stores none."""
    group = h5.get(f"{key}/vars")
    if group is None or not len(group):
        return None
    return [np.asarray(group[str(i)]) for i in range(len(group))]


def _layer_variables(layer) -> list:
    return list(layer._trainable_variables) + list(layer._non_trainable_variables)  # keras' save order


def _open_weights(path: str):
    if not tf.io.gfile.exists(path):
        raise InitWeightsError(f"model.image.init_weights: {path} does not exist (nothing is "
                               "downloaded; docs/TRAINING.md, 'Starting from pretrained weights')")
    handle = tf.io.gfile.GFile(path, "rb")  # local or gs://
    try:
        h5 = h5py.File(handle, "r")
    except OSError as error:
        handle.close()
        raise InitWeightsError(f"model.image.init_weights: {path} is not an HDF5 weights file "
                               f"({error})") from error
    if "layers" not in h5:
        h5.close()
        handle.close()
        raise InitWeightsError(
            f"model.image.init_weights: {path} is not a Keras 3 weights file (no 'layers' group; "
            "write it with model.save_weights('NAME.weights.h5'))")
    return handle, h5


def _uses_imagenet_input_statistics(trunk: keras.Model, path: str) -> bool:
    """Whether the file's input Normalization holds keras' ImageNet statistics, whose variance is
    the standard deviation (keras.applications then adds a Rescaling by 1/sqrt(stddev))."""
    handle, h5 = _open_weights(path)
    try:
        for layer, key in weights_file_keys(trunk):
            if isinstance(layer, keras.layers.Normalization):
                stored = _stored_variables(h5, key)
                return (stored is not None and len(stored) >= 2 and stored[1].shape == (3,)
                        and np.allclose(stored[1], keras_efficientnet.IMAGENET_STDDEV_RGB, atol=1e-6))
        return False
    finally:
        h5.close()
        handle.close()


def _insert_imagenet_input_scaling(model: keras.Model) -> keras.Model:
    """As keras.applications' EfficientNet(weights="imagenet"): a Rescaling by 1/sqrt(stddev)
    after the input Normalization, so that the network sees (x / 255 - mean) / stddev."""
    scale = [1.0 / math.sqrt(s) for s in keras_efficientnet.IMAGENET_STDDEV_RGB]

    def call(layer, *args, **kwargs):
        out = layer(*args, **kwargs)
        if isinstance(layer, keras.layers.Normalization):
            out = keras.layers.Rescaling(scale, name="imagenet_stddev_rescaling")(out)
        return out
    return keras.models.clone_model(model, clone_function=lambda l: l.__class__.from_config(
        l.get_config()), call_function=call)


def load_init_weights(trunk: keras.Model, path: str, head_keys=()) -> int:
    """Loads the .weights.h5 file `path` into `trunk` (every layer with variables must be in the
    file with the same shapes; file layers the trunk lacks are allowed only in `head_keys`: the
    head ALIGN cuts off). Checks everything before assigning anything; returns the layer count."""
    handle, h5 = _open_weights(path)
    try:
        loads, matched = [], set()
        for layer, key in weights_file_keys(trunk):
            variables = _layer_variables(layer)
            stored = _stored_variables(h5, key)
            if not variables:
                if stored is not None:
                    raise InitWeightsError(
                        f"model.image.init_weights: {path}: layer {layer.name!r} has no variables "
                        f"but the file stores {len(stored)} under {key} (another network?)")
                continue
            want = [tuple(v.shape) for v in variables]
            got = None if stored is None else [tuple(a.shape) for a in stored]
            if got != want:
                held = "nothing" if got is None else f"shapes {got}"
                raise InitWeightsError(
                    f"model.image.init_weights: {path} does not fit the configured EfficientNet: "
                    f"first mismatching layer {layer.name!r} (file key {key}): the file holds "
                    f"{held}, the model needs {want} (another variant, width_coefficient or "
                    "depth_coefficient?)")
            loads.append((layer, stored))
            matched.add(key)
        extra = sorted(key for key in (f"layers/{k}" for k in h5["layers"])
                       if key not in matched and key not in head_keys
                       and _stored_variables(h5, key) is not None)
        if extra:
            raise InitWeightsError(
                f"model.image.init_weights: {path} does not fit the configured EfficientNet: it "
                f"holds {len(extra)} layers with weights the model does not have, first {extra[0]} "
                "(a deeper variant, or another network?)")
        for layer, stored in loads:
            layer.load_own_variables({str(i): a for i, a in enumerate(stored)})
        return len(loads)
    finally:
        h5.close()
        handle.close()


def build_efficientnet_trunk(image_cfg, name: str = "efficientnet") -> keras.Model:
    """images float [B, crop, crop, 3] in [0, 255] -> last block's feature map [B, h, w, C].

    keras' EfficientNet rescales by 1/255 inside; its input Normalization layer stays the identity
    with weights=None (no ImageNet statistics), and the stem batch norm learns the scale. With
    init_weights, the file's weights are loaded (the Normalization's statistics too), and a file
    with keras' ImageNet statistics gets the Rescaling keras.applications adds for them.
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
    init_weights = getattr(image_cfg, "init_weights", None)
    if init_weights:
        in_trunk = {id(layer) for layer in trunk.layers}
        # The cut-off head (top_conv, top_bn) and include_top's classifier ("dense"): allowed in
        # the file, not loaded.
        head_keys = {key for layer, key in weights_file_keys(full) if id(layer) not in in_trunk}
        head_keys.add("layers/dense")
        if _uses_imagenet_input_statistics(trunk, init_weights):
            trunk = _insert_imagenet_input_scaling(trunk)
    if image_cfg.sync_batch_norm:
        trunk = _synchronize_batch_norm(trunk)
    if init_weights:  # after the clones above, which make new variables
        load_init_weights(trunk, init_weights, head_keys)
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
