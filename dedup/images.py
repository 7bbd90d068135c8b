"""Image helpers of the weight-free embedder and the eval crop views: pHash, centre crop, PNG.

Decoding is the project's one decoder, schemas.image_decode.decode_rgb (EXIF orientation, alpha on
white, first frame, 16-bit to 8-bit, pixel cap).
"""
import io

import imagehash
from PIL import Image


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
