"""Decoding of image bytes for the weight-free embedder and the perceptual hash (Pillow only)."""
import io
from typing import Optional

import imagehash
from PIL import Image, ImageOps

WHITE = (255, 255, 255, 255)


def decode_rgb(image_bytes: bytes, draft_side_px: Optional[int] = 128) -> Image.Image:
    """Encoded bytes -> RGB image: EXIF orientation applied, first frame, alpha composited on white.

    `draft_side_px` lets the JPEG decoder skip DCT detail (fast) when only a thumbnail is needed.
    Raises the Pillow error (OSError, Image.DecompressionBombError, ...) on unreadable bytes.
    """
    image = Image.open(io.BytesIO(image_bytes))
    if draft_side_px and image.format == "JPEG":
        image.draft("RGB", (draft_side_px, draft_side_px))
    image.load()
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA", "P", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, WHITE[:3])
        canvas.paste(rgba, mask=rgba.getchannel("A"))  # = alpha_composite on white, ~2x faster
        return canvas
    return image.convert("RGB")


def phash64(image: Image.Image) -> int:
    """64-bit perceptual hash (DCT of the 32x32 luminance; imagehash.phash) as an unsigned int."""
    return int(str(imagehash.phash(image, hash_size=8)), 16)


def centre_crop(image: Image.Image, fraction: float) -> Image.Image:
    """The centre crop keeping `fraction` of each side."""
    width, height = image.size
    crop_w, crop_h = max(1, round(width * fraction)), max(1, round(height * fraction))
    left, top = (width - crop_w) // 2, (height - crop_h) // 2
    return image.crop((left, top, left + crop_w, top + crop_h))


def encode_png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
