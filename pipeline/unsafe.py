"""The pornography filter of the paper (section 3, "we remove pornographic images"), pluggable.

The paper does not say which classifier it used, so the scorer is the user's:
- `--unsafe_model_path`: a TensorFlow SavedModel run with Beam's RunInference. Its
  `serving_default` signature takes one float32 tensor [batch, px, px, 3] with RGB values in [0, 1]
  (the stored JPEG resized to `--unsafe_model_input_px`) and returns [batch] or [batch, k] scores;
  column `--unsafe_score_index` of the first output (by name) is the unsafe probability.
- `--unsafe_score_field`: a score already in the input (e.g. LAION's `punsafe`).
A pair is `unsafe` when its score >= `--unsafe_threshold`. With neither, no pair is scored and
stats.json / report.html say the filter was NOT applied. Only candidates (pairs that passed the
local filters, image size and word count, and decoded) are scored: every other pair already has
its outcome (local reasons come first in reasons.DROP_ORDER), so the model never runs on them.
"""
from typing import Any, Dict, Iterable, Optional, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler, RunInference
from PIL import Image

from pipeline import reasons
from schemas.image_decode import decode_rgb


def _pair(record: dict) -> str:
    """The identity flags are given for (transforms.pair_ident; the key outside CuratePairs)."""
    return record.get("ident", record["key"])


def is_unsafe(score: Optional[float], threshold: float) -> bool:
    return score is not None and score >= threshold


def unsafe_mode(config) -> str:
    if config.unsafe_model_path:
        return "saved_model"
    return "score_field" if config.unsafe_score_field else "none"


def summarize(mode: str, config, scored_pairs: int, unscored_pairs: int, unsafe_pairs: int) -> dict:
    """The `filters.unsafe` entry of stats.json: applied only if at least one pair was scored."""
    applied = scored_pairs > 0
    if mode == "none":
        note = ("NOT APPLIED: no scorer configured (give --unsafe_model_path or "
                "--unsafe_score_field)")
    elif not applied:
        note = f"NOT APPLIED: {mode} configured but no pair had a score"
    else:
        source = (f"SavedModel {config.unsafe_model_path}" if mode == "saved_model"
                  else f"input field {config.unsafe_score_field!r}")
        note = (f"applied to {scored_pairs} candidate pairs with scores from {source}; "
                f"{unscored_pairs} pairs had no score and were kept unscored")
    return {"applied": applied, "mode": mode, "note": note, "threshold": config.unsafe_threshold,
            "scored_pairs": scored_pairs, "unscored_pairs": unscored_pairs,
            "unsafe_pairs": unsafe_pairs}


def image_array(jpeg: bytes, size_px: int) -> np.ndarray:
    """The model input of one image: uint8 [size_px, size_px, 3] (squashed, as most classifiers)."""
    image = decode_rgb(jpeg)  # the stored JPEG; the project's one decoder all the same
    return np.asarray(image.resize((size_px, size_px), Image.Resampling.BILINEAR), dtype=np.uint8)


class SavedModelScoreHandler(ModelHandler):
    """RunInference handler for a TF SavedModel signature (Keras-free: tf.saved_model.load)."""

    def __init__(self, model_path: str, score_index: int = -1,
                 signature: str = "serving_default", max_batch_size: int = 64):
        super().__init__()
        self._model_path, self._score_index, self._signature = model_path, score_index, signature
        self._max_batch_size = max_batch_size

    def load_model(self):
        import tensorflow as tf
        return tf.saved_model.load(self._model_path).signatures[self._signature]

    def run_inference(self, batch: Sequence[np.ndarray], model, inference_args=None
                      ) -> Iterable[float]:
        import tensorflow as tf
        images = tf.constant(np.stack(batch).astype(np.float32) / 255.0)
        (input_name,) = model.structured_input_signature[1].keys()
        outputs = model(**{input_name: images})
        scores = outputs[sorted(outputs)[0]].numpy()
        if scores.ndim == 2:
            scores = scores[:, self._score_index]
        return [float(s) for s in scores.reshape(len(batch))]

    def batch_elements_kwargs(self) -> Dict[str, Any]:
        return {"max_batch_size": self._max_batch_size}


class ScoreUnsafe(beam.PTransform):
    """PCollection[candidate record] -> {"flags": PCollection[(key, "unsafe")],
    "summary": PCollection[one dict, the filters.unsafe entry of stats.json]}."""

    def __init__(self, config):
        super().__init__()
        self._config = config
        self._mode = unsafe_mode(config)

    def _scores(self, candidates):
        config = self._config
        if self._mode == "score_field":
            return candidates | "ReadScores" >> beam.Map(lambda r: (_pair(r), r["unsafe_score"]))
        handler = KeyedModelHandler(SavedModelScoreHandler(config.unsafe_model_path,
                                                           config.unsafe_score_index))
        size = config.unsafe_model_input_px
        return (candidates
                | "ToModelInput" >> beam.Map(lambda r: (_pair(r), image_array(r["jpeg"], size)))
                | "RunUnsafeModel" >> RunInference(handler))

    def expand(self, candidates):
        config, mode = self._config, self._mode
        if mode == "none":
            scores = candidates | "NoScores" >> beam.Map(lambda r: (_pair(r), None))
        else:
            scores = self._scores(candidates)
        threshold = config.unsafe_threshold
        flags = (scores
                 | "KeepUnsafe" >> beam.Filter(lambda kv: is_unsafe(kv[1], threshold))
                 | "ToUnsafeFlag" >> beam.Map(lambda kv: (kv[0], reasons.UNSAFE)))
        tallies = (scores
                   | "TallyScores" >> beam.Map(lambda kv: np.array(
                       [kv[1] is not None, kv[1] is None, is_unsafe(kv[1], threshold)], np.int64))
                   | "SumTallies" >> beam.CombineGlobally(
                       lambda rows: np.sum(list(rows), axis=0) if rows else np.zeros(3, np.int64)))
        summary = tallies | "SummarizeUnsafe" >> beam.Map(
            lambda t: summarize(mode, config, int(t[0]), int(t[1]), int(t[2])))
        return {"flags": flags, "summary": summary}
