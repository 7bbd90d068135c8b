"""BERT text encoder from scratch (paper 4.1): keras_hub's BertBackbone, [CLS] output (or, in
small-scale configs, the mean over the caption's tokens: TextTowerConfig.pooling).

Sizes follow Turc et al. 2019 ("Well-Read Students Learn Better"): layers L, hidden H, H/64 heads,
4H feed-forward. The encoder returns the [CLS] position of the last layer's sequence output; the
linear projection to the image embedding width lives in the dual encoder (trainer/model.py).
BertBackbone's tanh "pooled_dense" (the NSP pooler) is not used by ALIGN and is left out of the
graph, so it has no (untrained) variables in the model.
"""
import keras
import keras_hub

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


def build_text_encoder(text_cfg, vocab_size: int, name: str = "text_encoder") -> keras.Model:
    """{"token_ids": int32 [B, L], "padding_mask": bool [B, L]} -> pooled features [B, H] (float32):
    the [CLS] position, or the masked mean with pooling="mean"."""
    dims = bert_dims(text_cfg)
    if text_cfg.pooling not in POOLINGS:
        raise ValueError(f"unknown text pooling {text_cfg.pooling!r}; choose one of {POOLINGS}")
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=vocab_size,
        dropout=text_cfg.dropout_rate,
        max_sequence_length=text_cfg.max_tokens,
        num_segments=1,  # single-segment inputs: segment ids are all 0
        name="bert",
        **dims,
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
