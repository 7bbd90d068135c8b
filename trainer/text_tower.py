"""BERT text encoder from scratch (paper 4.1): keras_hub's BertBackbone, [CLS] output (or, in
small-scale configs, the mean over the caption's tokens: TextTowerConfig.pooling).

Sizes follow Turc et al. 2019 ("Well-Read Students Learn Better"): layers L, hidden H, H/64 heads,
4H feed-forward. The encoder returns the [CLS] position of the last layer's sequence output; the
linear projection to the image embedding width lives in the dual encoder (trainer/model.py).
BertBackbone's tanh "pooled_dense" (the NSP pooler) is not used by ALIGN and is left out of the
graph, so it has no (untrained) variables in the model.

`TextTowerConfig.preset` starts from a local keras-hub preset directory instead (architecture and
weights; its vocabulary is the trainer's: trainer/input_pipeline.py, docs/TRAINING.md "Starting from
pretrained weights").
"""
import logging

import keras
import keras_hub
import tensorflow as tf

# size -> (num_layers, hidden_dim); heads = hidden / 64, intermediate = 4 * hidden (Turc et al. 2019)
BERT_SIZES = {
    "tiny": (2, 128),
    "mini": (4, 256),
    "small": (4, 512),
    "medium": (8, 512),
    "base": (12, 768),
    "large": (24, 1024),
}


class ClsToken(keras.layers.Layer):
    """[B, L, H] -> [B, H]: the first ([CLS]) position, in float32 (paper 4.1)."""

    def __init__(self, **kwargs):
        kwargs.pop("dtype", None)
        super().__init__(dtype="float32", **kwargs)

    def call(self, sequence):
        return keras.ops.cast(sequence[:, 0, :], "float32")


class MaskedMeanPool(keras.layers.Layer):
    """([B, L, H], bool mask [B, L]) -> [B, H]: the mean over the non-padding positions, float32."""

    def __init__(self, **kwargs):
        kwargs.pop("dtype", None)
        super().__init__(dtype="float32", **kwargs)

    def call(self, sequence, padding_mask):
        mask = keras.ops.expand_dims(keras.ops.cast(padding_mask, "float32"), -1)
        total = keras.ops.sum(keras.ops.cast(sequence, "float32") * mask, axis=1)
        return total / keras.ops.maximum(keras.ops.sum(mask, axis=1), 1.0)


POOLINGS = ("cls", "mean")


def bert_dims(text_cfg) -> dict:
    """Layer count and widths of the configured BERT size, with the config's overrides applied."""
    if text_cfg.size not in BERT_SIZES:
        raise ValueError(f"unknown BERT size {text_cfg.size!r}; choose one of {list(BERT_SIZES)}")
    num_layers, hidden_dim = BERT_SIZES[text_cfg.size]
    num_layers = text_cfg.num_layers or num_layers
    hidden_dim = text_cfg.hidden_dim or hidden_dim
    return {
        "num_layers": num_layers,
        "hidden_dim": hidden_dim,
        "num_heads": text_cfg.num_heads or max(1, hidden_dim // 64),
        "intermediate_dim": text_cfg.intermediate_dim or 4 * hidden_dim,
    }


class PresetError(ValueError):
    """model.text.preset is not a usable local BertBackbone preset (names the directory)."""


def load_preset_backbone(text_cfg, vocab_size: int) -> keras_hub.models.BertBackbone:
    """The BertBackbone of the local preset directory text_cfg.preset, weights loaded, with the
    config's dropout; checked against the trainer's vocabulary size and max_tokens."""
    preset = text_cfg.preset
    remote = "://" in preset and not preset.startswith("gs://")  # kaggle://, hf://: downloads
    if remote or not tf.io.gfile.isdir(preset):
        raise PresetError(
            f"model.text.preset: {preset!r} is not a preset directory (nothing is downloaded: save "
            "one with backbone.save_to_preset(DIR) and tokenizer.save_to_preset(DIR) on a machine "
            "with internet; docs/TRAINING.md, 'Starting from pretrained weights')")
    present = set(tf.io.gfile.listdir(preset))
    # model.weights.json: the index of a sharded save (keras-hub's max_shard_size)
    for required in ("config.json", ("model.weights.h5", "model.weights.json")):
        if not present & set((required,) if isinstance(required, str) else required):
            name = required if isinstance(required, str) else required[0]
            raise PresetError(f"model.text.preset: {preset} has no {name} "
                              "(write it with backbone.save_to_preset(DIR))")
    backbone = keras_hub.models.BertBackbone.from_preset(
        preset, dropout=text_cfg.dropout_rate, name="bert")
    if backbone.vocabulary_size != vocab_size:
        raise PresetError(
            f"model.text.preset: the BERT of {preset} has {backbone.vocabulary_size} token "
            f"embeddings but the trainer's vocabulary (--vocab) has {vocab_size} tokens: pass "
            f"--vocab {preset} (the preset's own vocabulary)")
    if backbone.max_sequence_length < text_cfg.max_tokens:
        raise PresetError(
            f"model.text.preset: the BERT of {preset} has {backbone.max_sequence_length} positions, "
            f"fewer than model.text.max_tokens={text_cfg.max_tokens}")
    logging.info("text tower from preset %s: %d layers, width %d, %d heads, vocabulary %d",
                 preset, backbone.num_layers, backbone.hidden_dim, backbone.num_heads,
                 backbone.vocabulary_size)
    return backbone


def build_text_encoder(text_cfg, vocab_size: int, name: str = "text_encoder") -> keras.Model:
    """{"token_ids": int32 [B, L], "padding_mask": bool [B, L]} -> pooled features [B, H] (float32):
    the [CLS] position, or the masked mean with pooling="mean". With text_cfg.preset, the BERT
    (architecture and weights) is the preset's (load_preset_backbone)."""
    if text_cfg.pooling not in POOLINGS:
        raise ValueError(f"unknown text pooling {text_cfg.pooling!r}; choose one of {POOLINGS}")
    if getattr(text_cfg, "preset", None):
        backbone = load_preset_backbone(text_cfg, vocab_size)
    else:
        backbone = keras_hub.models.BertBackbone(
            vocabulary_size=vocab_size,
            dropout=text_cfg.dropout_rate,
            max_sequence_length=text_cfg.max_tokens,
            num_segments=1,  # single-segment inputs: segment ids are all 0
            name="bert",
            **bert_dims(text_cfg),
        )
    # Sub-graph without the NSP pooler (see module docstring).
    sequence_encoder = keras.Model(backbone.input, backbone.output["sequence_output"], name="bert_encoder")
    token_ids = keras.Input((None,), dtype="int32", name="token_ids")
    padding_mask = keras.Input((None,), dtype="bool", name="padding_mask")
    sequence = sequence_encoder({
        "token_ids": token_ids,
        "segment_ids": keras.ops.zeros_like(token_ids),
        "padding_mask": keras.ops.cast(padding_mask, "int32"),
    })
    if text_cfg.pooling == "mean":
        pooled = MaskedMeanPool(name="masked_mean_pool")(sequence, padding_mask)
    else:
        pooled = ClsToken(name="cls_token")(sequence)
    return keras.Model({"token_ids": token_ids, "padding_mask": padding_mask}, pooled, name=name)
