"""Query embeddings: text, image, or image + text (paper Figure 1: the sum of the two embeddings)."""
from typing import Optional

import numpy as np

from schemas.image_decode import ImageDecodeError, model_input_bytes
from trainer.evaluation.metrics import l2_normalize


class UnreadableQueryImage(ImageDecodeError):
    """A query image the project's decoder refuses; `name` is one of schemas.image_decode.IMAGE_ERRORS."""

    def __init__(self, name: str):
        super().__init__(name)
        self.args = (f"unreadable image: {name}",)


def check_image(image: bytes) -> bytes:
    """Decodes `image` with the project's one decoder (its pixel cap, the same as curation's) so that
    bytes it refuses, decompression bombs above all, never reach the model's own uncapped decoder;
    returns the bytes to embed (schemas.image_decode.model_input_bytes, as the index's images)."""
    try:
        return model_input_bytes(image)
    except ImageDecodeError as e:
        raise UnreadableQueryImage(e.name) from e


def combine_image_and_text(image_emb: np.ndarray, text_emb: np.ndarray) -> np.ndarray:
    """Paper Figure 1 ("image + text" queries): the sum of the two L2-normalized embeddings,
    re-normalized so that scores stay cosines (re-normalizing does not change the ranking)."""
    return l2_normalize(l2_normalize(image_emb) + l2_normalize(text_emb))


def query_embedding(model, text: Optional[str] = None, image: Optional[bytes] = None,
                    image_embedding: Optional[np.ndarray] = None) -> np.ndarray:
    """[D] query vector. `image` is encoded bytes (UnreadableQueryImage, a ValueError, if the
    project's decoder refuses them); `image_embedding` an already embedded image (e.g. a row of
    the index: "more like this")."""
    text = (text or "").strip()
    if image is not None:
        image_embedding = model.embed_images([check_image(image)])[0]
    if image_embedding is None and not text:
        raise ValueError("empty query: give a text, an image, or both")
    if image_embedding is None:
        return model.embed_texts([text])[0]
    if not text:
        return l2_normalize(image_embedding)
    return combine_image_and_text(image_embedding, model.embed_texts([text])[0])
