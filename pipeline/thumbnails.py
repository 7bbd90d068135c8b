"""Small JPEG data-URI thumbnails for the audit report (never decodes oversized images).

Decoded by the project's one decoder (schemas/image_decode.py: EXIF orientation, first frame,
alpha on white, 16-bit scaled), with a lower pixel cap than curation's: a thumbnail is never worth
decoding 50 Mpx.
"""
import base64
import re
from typing import Optional

from schemas.image_decode import thumbnail_jpeg

MAX_THUMBNAIL_SOURCE_PIXELS = 50_000_000  # refuse to decode more (header check first): bombs
_DATA_URI = re.compile(r"^data:image/jpeg;base64,[A-Za-z0-9+/]+={0,2}$")


def make_thumbnail(image_bytes: bytes, max_side_px: int = 128) -> Optional[str]:
    """JPEG data URI of `image_bytes` with its longer side at most `max_side_px`; None when the
    bytes are not a decodable image or hold more than MAX_THUMBNAIL_SOURCE_PIXELS pixels."""
    if not image_bytes:
        return None
    jpeg = thumbnail_jpeg(image_bytes, max_side_px, quality=80,
                          max_image_pixels=MAX_THUMBNAIL_SOURCE_PIXELS)
    if jpeg is None:
        return None
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def is_safe_data_uri(uri) -> bool:
    """Only base64 JPEG data URIs are embedded in the report (no markup can hide in them)."""
    return isinstance(uri, str) and _DATA_URI.match(uri) is not None
