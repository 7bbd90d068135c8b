"""Small JPEG data-URI thumbnails for the audit report (never decodes oversized images)."""
import base64
import io
import re
from typing import Optional

from PIL import Image, ImageOps

MAX_THUMBNAIL_SOURCE_PIXELS = 50_000_000  # refuse to decode more (header check first): bombs
_DATA_URI = re.compile(r"^data:image/jpeg;base64,[A-Za-z0-9+/]+={0,2}$")
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in _SIXTEEN_BIT_MODES:
        image = image.point(lambda v: v * (1 / 256)).convert("L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        return background
    return image.convert("RGB")


def make_thumbnail(image_bytes: bytes, max_side_px: int = 128) -> Optional[str]:
    """JPEG data URI of `image_bytes` with its longer side at most `max_side_px`; None when the
    bytes are not a decodable image or hold more than MAX_THUMBNAIL_SOURCE_PIXELS pixels.
    EXIF orientation applied, first frame of animations, transparency flattened on white."""
    if not image_bytes:
        return None
    try:
        with Image.open(io.BytesIO(image_bytes)) as image:
            width, height = image.size
            if width <= 0 or height <= 0 or width * height > MAX_THUMBNAIL_SOURCE_PIXELS:
                return None
            image.draft("RGB", (max_side_px, max_side_px))  # JPEG: decode at reduced scale
            image.seek(0)
            image.load()
            image = ImageOps.exif_transpose(image)
            image.thumbnail((max_side_px, max_side_px))
            out = io.BytesIO()
            _to_rgb(image).save(out, format="JPEG", quality=80)
    except Exception:  # noqa: BLE001 - any undecodable input means "no thumbnail", never a crash
        return None
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def is_safe_data_uri(uri) -> bool:
    """Only base64 JPEG data URIs are embedded in the report (no markup can hide in them)."""
    return isinstance(uri, str) and _DATA_URI.match(uri) is not None
