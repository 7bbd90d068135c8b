"""Weight-free default embedder: a blurred, contrast-normalized luminance thumbnail.

Why this works for near-duplicates (measured with `align-dedup calibrate`, docs/DEDUP.md):
* resizes and re-encodes: the image is box-filtered down to `side_px` x `side_px` and blurred, which
  removes the resampling and compression detail where copies differ;
* small colour changes (brightness, contrast, saturation, hue): only luminance is used, and the
  thumbnail is mean-subtracted and L2-normalized, so the cosine of two embeddings is the Pearson
  correlation of the thumbnails, invariant to affine changes of brightness;
* crops are its weak point (content moves across the grid); `--dedup_eval_crop_fractions` adds
  cropped views of the evaluation images to the index for that.
Images that cannot be decoded embed as the zero vector (cosine 0 with everything: never a match).
"""
from typing import List, NamedTuple, Optional, Sequence

import numpy as np
from PIL import Image
from scipy import ndimage

from dedup.images import phash64
from schemas.image_decode import decode_rgb


class PixelEmbedding(NamedTuple):
    """The pixel embedding and, from the same decode, the 64-bit pHash (None: not computed)."""
    vector: np.ndarray
    phash: Optional[int]


class PixelEmbedder:
    name = "pixel"

    def __init__(self, side_px: int = 32, blur_sigma_px: float = 1.0):
        self.side_px = side_px
        self.blur_sigma_px = blur_sigma_px
        self.dim = side_px * side_px

    def embed_image(self, image: Image.Image) -> np.ndarray:
        luminance = image.convert("L")
        filter_ = Image.BOX if min(luminance.size) >= self.side_px else Image.BILINEAR
        thumb = np.asarray(luminance.resize((self.side_px, self.side_px), filter_), np.float32)
        if self.blur_sigma_px:
            thumb = ndimage.gaussian_filter(thumb, self.blur_sigma_px, mode="nearest")
        thumb = thumb - thumb.mean()
        norm = float(np.linalg.norm(thumb))
        if norm < 1e-3:  # a flat image has no pattern to compare: zero vector, never a match
            return np.zeros(self.dim, np.float32)
        return (thumb / norm).ravel().astype(np.float32)

    def embed_bytes(self, image_bytes: bytes) -> np.ndarray:
        try:
            image = decode_rgb(image_bytes, draft_side_px=4 * self.side_px)
        except Exception:  # noqa: BLE001 - unreadable training bytes: zero vector, counted by caller
            return np.zeros(self.dim, np.float32)
        return self.embed_image(image)

    def embed_with_phash(self, image_bytes: bytes) -> PixelEmbedding:
        """One decode for both the embedding and the pHash first pass (stage hot path)."""
        try:
            image = decode_rgb(image_bytes, draft_side_px=4 * self.side_px)
        except Exception:  # noqa: BLE001 - unreadable training bytes: zero vector, no hash
            return PixelEmbedding(np.zeros(self.dim, np.float32), None)
        return PixelEmbedding(self.embed_image(image), phash64(image))

    def embed(self, images: Sequence[bytes]) -> np.ndarray:
        rows: List[np.ndarray] = [self.embed_bytes(b) for b in images]
        return np.stack(rows) if rows else np.zeros((0, self.dim), np.float32)
