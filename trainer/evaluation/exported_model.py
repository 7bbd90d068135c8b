"""The exported SavedModel (`WORKDIR/export/`, see trainer/export.py) as numpy-in, numpy-out embedders."""
import json
from typing import Iterable, List, Optional, Sequence

import numpy as np

from trainer.evaluation import files

SIGNATURES = ("embed_image", "embed_text", "text_cls_features")
EXPORT_INFO_FILE = "align_export.json"


class ModelLoadError(RuntimeError):
    """The --model path is not a usable ALIGN export."""


class UnreadableImageError(ValueError):
    """Some encoded images could not be decoded by the model; `indices` are their positions."""

    def __init__(self, indices: List[int], detail: str):
        self.indices = indices
        super().__init__(f"{len(indices)} unreadable image(s) at position(s) {indices[:10]}: {detail}")


class ExportedModel:
    """Embeds encoded images and raw texts in batches with the export's signatures."""

    def __init__(self, export_dir: str, batch_size: int = 64):
        import tensorflow as tf  # deferred: a bad path fails fast without importing TensorFlow

        check_export_dir(export_dir)
        import tensorflow_text  # noqa: F401 - registers the tokenizer ops the export's embed_text uses

        self.export_dir = export_dir
        self.batch_size = batch_size
        try:
            self._loaded = tf.saved_model.load(export_dir)
        except Exception as e:  # noqa: BLE001 - re-raised with the path and the cause
            raise ModelLoadError(f"cannot load SavedModel {export_dir}: {e}") from e
        missing = [s for s in SIGNATURES if s not in self._loaded.signatures]
        if missing:
            raise ModelLoadError(
                f"{export_dir} lacks signature(s) {missing}; has {sorted(self._loaded.signatures)}"
            )
        self._tf = tf
        self.info = read_export_info(export_dir)

    def _run(self, signature: str, arg: str, out: str, values: Sequence) -> np.ndarray:
        fn = self._loaded.signatures[signature]
        chunks: List[np.ndarray] = []
        for start in range(0, len(values), self.batch_size):
            batch = self._tf.constant(list(values[start : start + self.batch_size]), dtype=self._tf.string)
            chunks.append(fn(**{arg: batch})[out].numpy().astype(np.float32))
        if not chunks:
            return np.zeros((0, self.embedding_dim if out == "embedding" else 0), np.float32)
        return np.concatenate(chunks, axis=0)

    @property
    def embedding_dim(self) -> int:
        return int(self.info.get("embedding_dim", 0))

    def embed_images(self, encoded_images: Sequence[bytes]) -> np.ndarray:
        """Encoded JPEG/PNG bytes -> [N, D] L2-normalized image embeddings; UnreadableImageError
        (naming every bad position) if the model cannot decode some of them."""
        embeddings, bad, detail = self.embed_images_skipping(encoded_images)
        if bad:
            raise UnreadableImageError(bad, detail)
        return embeddings

    def embed_images_skipping(self, encoded_images: Sequence[bytes]):
        """-> (embeddings of the decodable images [N - len(bad), D], bad positions, first error)."""
        tf = self._tf
        chunks, bad, detail = [], [], ""
        for start in range(0, len(encoded_images), self.batch_size):
            batch = list(encoded_images[start : start + self.batch_size])
            try:
                chunks.append(self._run("embed_image", "images", "embedding", batch))
                continue
            except tf.errors.InvalidArgumentError as e:
                detail = detail or _error_summary(e.message)
            for offset, image in enumerate(batch):  # find the culprits one by one
                try:
                    chunks.append(self._run("embed_image", "images", "embedding", [image]))
                except tf.errors.InvalidArgumentError:
                    bad.append(start + offset)
        dim = chunks[0].shape[1] if chunks else self.embedding_dim
        embeddings = np.concatenate(chunks, axis=0) if chunks else np.zeros((0, dim), np.float32)
        return embeddings, bad, detail

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Raw strings -> [N, D] L2-normalized text embeddings."""
        return self._run("embed_text", "texts", "embedding", [t.encode("utf-8") for t in texts])

    def text_cls_features(self, texts: Sequence[str]) -> np.ndarray:
        """Raw strings -> [N, H] text-tower [CLS] output before the projection."""
        return self._run("text_cls_features", "texts", "features", [t.encode("utf-8") for t in texts])


def _error_summary(message: str) -> str:
    """The informative line of a TensorFlow graph error (not 'Graph execution error:' or traces)."""
    lines = [l.strip() for l in message.splitlines() if l.strip()]
    skip = ("Graph execution error", "Detected at node", "<stack traces", "[[", "File ")
    useful = [l for l in lines if not l.startswith(skip)]
    return useful[0] if useful else (lines[0] if lines else "")


def check_export_dir(export_dir: Optional[str]) -> None:
    if not export_dir:
        raise ModelLoadError("no --model given (the export directory, e.g. WORKDIR/export)")
    # A local path is checked without importing TensorFlow; a URL (gs://...) through tf.io.gfile.
    if not files.isdir(export_dir):
        raise ModelLoadError(f"model directory not found: {export_dir}")
    if not files.exists(files.join(export_dir, "saved_model.pb")):
        hint = " (did you mean its export/ subdirectory?)" if files.isdir(files.join(export_dir, "export")) else ""
        raise ModelLoadError(f"{export_dir} is not a SavedModel: no saved_model.pb{hint}")


def read_export_info(export_dir: str) -> dict:
    path = files.join(export_dir, EXPORT_INFO_FILE)
    if not files.exists(path):
        return {}
    return json.loads(files.read_text(path))


def batched(items: Iterable, size: int):
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
