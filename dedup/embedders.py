"""Pluggable image embedders, all run through Beam's RunInference as ModelHandlers.

* `PixelEmbedderHandler`: the weight-free default (dedup/pixel_embedder.py).
* `SavedModelEmbedderHandler`: any TF SavedModel with a signature (default `embed_image`)
  mapping `images` tf.string [None] (encoded bytes) to {"embedding": float32 [None, D]}: the
  trainer's export (WORKDIR/export) is one. Embeddings are L2-normalized here again, so any model
  works with cosine. With DedupConfig.savedmodel_trim_borders it gets images without their
  uniform margins (model_input_or_none).
Both take image bytes and return numpy float32 [D] unit vectors (zero for undecodable images with
the pixel embedder), wrapped in `PredictionResult(example=bytes, inference=vector)`.
"""
import io
from typing import Any, Iterable, Optional, Sequence

import numpy as np
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from dedup.config import PIXEL_EMBEDDER, DedupConfig
from dedup.images import trim_uniform_borders
from dedup.pixel_embedder import PixelEmbedder
from schemas.image_decode import ImageDecodeError, decode_rgb, model_input_bytes


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.where(norms > 0, vectors / np.maximum(norms, 1e-12), 0).astype(np.float32)


class PixelEmbedderHandler(ModelHandler[bytes, PredictionResult, PixelEmbedder]):
    """With `with_phash`, inference is a PixelEmbedding (vector + pHash from the same decode)."""

    def __init__(self, batch_size: int = 64, with_phash: bool = False):
        super().__init__(min_batch_size=1, max_batch_size=batch_size)
        self.with_phash = with_phash

    def load_model(self) -> PixelEmbedder:
        return PixelEmbedder()

    def run_inference(self, batch: Sequence[bytes], model: PixelEmbedder,
                      inference_args: Optional[dict] = None) -> Iterable[PredictionResult]:
        if self.with_phash:
            return [PredictionResult(b, model.embed_with_phash(b)) for b in batch]
        return [PredictionResult(b, v) for b, v in zip(batch, model.embed(batch))]

    def get_metrics_namespace(self) -> str:
        return "dedup_pixel_embedder"


class SavedModelEmbedderHandler(ModelHandler[bytes, PredictionResult, Any]):
    """With `trim_borders`, the model gets each image without its uniform margins."""

    def __init__(self, model_dir: str, signature: str = "embed_image", batch_size: int = 64,
                 trim_borders: bool = False):
        super().__init__(min_batch_size=1, max_batch_size=batch_size)
        self.model_dir = model_dir
        self.signature = signature
        self.trim_borders = trim_borders

    def load_model(self) -> Any:
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  registers the ops of the trainer export's tokenizer

        loaded = tf.saved_model.load(self.model_dir)
        if self.signature not in loaded.signatures:
            raise ValueError(f"SavedModel {self.model_dir!r} has no signature {self.signature!r} "
                             f"(has {sorted(loaded.signatures)})")
        return _LoadedSignature(loaded, loaded.signatures[self.signature])

    def run_inference(self, batch: Sequence[bytes], model: Any,
                      inference_args: Optional[dict] = None) -> Iterable[PredictionResult]:
        import tensorflow as tf

        inputs = [model_input_or_none(b, self.trim_borders) for b in batch]
        good = [i for i, data in enumerate(inputs) if data is not None]
        if not good:  # zero vectors of the right size: ask the model its size
            outputs = model.function(images=tf.constant([probe_image_bytes()], dtype=tf.string))
            vectors = np.zeros((len(batch), outputs["embedding"].shape[-1]), np.float32)
            return [PredictionResult(b, v) for b, v in zip(batch, vectors)]
        outputs = model.function(images=tf.constant([inputs[i] for i in good], dtype=tf.string))
        found = l2_normalize(outputs["embedding"].numpy())
        vectors = np.zeros((len(batch), found.shape[1]), np.float32)
        vectors[good] = found
        return [PredictionResult(b, v) for b, v in zip(batch, vectors)]

    def get_metrics_namespace(self) -> str:
        return "dedup_savedmodel_embedder"


def model_input_or_none(data: bytes, trim_borders: bool = False) -> Optional[bytes]:
    """What the SavedModel's own decoder gets (schemas.image_decode.model_input_bytes: EXIF
    orientation, alpha on white, first frame, pixel cap, as everywhere else), or None when the
    image does not decode: it then gets a zero vector, which matches nothing, as with the pixel
    embedder, instead of failing the whole batch (and job) inside TensorFlow's decoder.

    trim_borders: an image with uniform margins (images.trim_uniform_borders) is cropped to its content
    and handed over as a PNG (fast compression: it is decoded right away); one without margins
    goes as above. Trimming decodes each image once more here."""
    try:
        if trim_borders:
            image = decode_rgb(data)
            trimmed = trim_uniform_borders(image)
            if trimmed is not image:
                out = io.BytesIO()
                trimmed.save(out, format="PNG", compress_level=1)
                return out.getvalue()
        return model_input_bytes(data)
    except ImageDecodeError:
        return None


def probe_image_bytes() -> bytes:
    """A tiny valid PNG: run through the model only to learn its embedding size."""
    import io
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 8), (128, 128, 128)).save(out, format="PNG")
    return out.getvalue()


class _LoadedSignature:
    """Keeps the loaded SavedModel alive next to its signature function."""

    def __init__(self, loaded: Any, function: Any):
        self.loaded = loaded
        self.function = function


def make_model_handler(config: DedupConfig, with_phash: bool = False) -> ModelHandler:
    """The configured embedder; `with_phash` lets the pixel one return the pHash too."""
    if config.embedder == PIXEL_EMBEDDER:
        return PixelEmbedderHandler(batch_size=config.batch_size, with_phash=with_phash)
    return SavedModelEmbedderHandler(config.embedder, config.savedmodel_signature, config.batch_size,
                                     config.savedmodel_trim_borders)


_IN_PROCESS_MODELS: dict = {}  # (embedder, signature) -> loaded model, for embed_in_process


def embed_in_process(config: DedupConfig, images: Sequence[bytes]) -> np.ndarray:
    """Embeds without Beam (CLI, benchmarks): the same handler code as in the pipeline. The loaded
    model is kept for the next call with the same embedder (a SavedModel takes seconds to load)."""
    handler = make_model_handler(config)
    cache_key = (config.embedder, config.savedmodel_signature)
    model = _IN_PROCESS_MODELS.get(cache_key)
    if model is None:
        model = _IN_PROCESS_MODELS[cache_key] = handler.load_model()
    dims = []
    for start in range(0, len(images), config.batch_size):
        results = handler.run_inference(images[start:start + config.batch_size], model)
        dims += [r.inference for r in results]
    if not dims:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack(dims).astype(np.float32)
