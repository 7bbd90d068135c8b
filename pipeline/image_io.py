"""Image inspection and re-encoding for curation: plain functions that return a result or a named error.

Two steps, so that the paper's image filters (section 3) never pay for decoding pixels:

1. `inspect_image(data)` reads only the header (format, size, mode, EXIF orientation, frame count)
   and refuses empty input, non-image bytes and decompression bombs (more pixels than the cap).
2. `reencode_image(data)` decodes the pixels of an image that passed the filters, applies the EXIF
   orientation, converts every mode to 8-bit RGB (CMYK, 16-bit, palette+alpha, grayscale, alpha
   composited on white, first frame of animations), resizes so the shorter side is at most
   `max_shorter_side_px`, and re-encodes as baseline JPEG. Each conversion done is named in
   `ReencodedImage.conversions`, counted under `conversions` in stats.json.

Truncated images are only detectable when pixels are decoded, so `truncated_image` is an error of
step 2; an image dropped from its header (too small, bad aspect ratio) is never decoded.
"""
import dataclasses
import hashlib
import io
import warnings
from typing import Optional, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Error names (counted under `errors` in stats.json).
EMPTY_IMAGE = "empty_image"  # zero bytes
NOT_AN_IMAGE = "not_an_image"  # bytes no image decoder recognises
DECOMPRESSION_BOMB = "decompression_bomb"  # header announces more pixels than the cap
TRUNCATED_IMAGE = "truncated_image"  # pixel data ends early
UNDECODABLE_IMAGE = "undecodable_image"  # any other decoder failure (corrupt data, odd modes)
IMAGE_ERRORS = (EMPTY_IMAGE, NOT_AN_IMAGE, DECOMPRESSION_BOMB, TRUNCATED_IMAGE, UNDECODABLE_IMAGE)

# Conversion names (counted under `conversions` in stats.json).
EXIF_ROTATED = "exif_rotated"
ANIMATED_FIRST_FRAME = "animated_first_frame"
CMYK_TO_RGB = "cmyk_to_rgb"
SIXTEEN_BIT_TO_8BIT = "sixteen_bit_to_8bit"
ALPHA_ON_WHITE = "alpha_composited_on_white"  # RGBA, LA, and palette images with transparency
PALETTE_TO_RGB = "palette_to_rgb"
GRAYSCALE_TO_RGB = "grayscale_to_rgb"
OTHER_MODE_TO_RGB = "other_mode_to_rgb"  # YCbCr, LAB, HSV, 1-bit, 32-bit int/float
RESIZED = "resized"  # shorter side above max_shorter_side_px
CONVERSIONS = (
    EXIF_ROTATED, ANIMATED_FIRST_FRAME, CMYK_TO_RGB, SIXTEEN_BIT_TO_8BIT, ALPHA_ON_WHITE,
    PALETTE_TO_RGB, GRAYSCALE_TO_RGB, OTHER_MODE_TO_RGB, RESIZED,
)

# Pillow's own bomb threshold (Image.MAX_IMAGE_PIXELS, ~89.5 Mpx, i.e. 1024 * 1024 * 1024 // 4 // 3).
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485
_TRANSPOSED_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that swap width and height
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_RESIZE_FIRST_MODES = ("RGB", "L")  # resized before the conversion to RGB (cheaper)


@dataclasses.dataclass(frozen=True)
class ImageHeader:
    format: str  # "PNG", "JPEG", ...
    width: int  # pixels as displayed, i.e. after the EXIF orientation
    height: int
    mode: str  # Pillow mode before any conversion
    exif_orientation: int  # 1 = upright
    n_frames: int

    @property
    def shorter_side_px(self) -> int:
        return min(self.width, self.height)

    @property
    def aspect_ratio(self) -> float:
        """Longer side over shorter side (>= 1; inf for a zero side)."""
        short = self.shorter_side_px
        return max(self.width, self.height) / short if short else float("inf")


@dataclasses.dataclass(frozen=True)
class ReencodedImage:
    jpeg: bytes
    width: int  # of the JPEG
    height: int
    original_width: int  # after EXIF orientation, before resizing
    original_height: int
    conversions: tuple  # names from CONVERSIONS, in the order applied


def open_image(data: bytes, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
               ) -> Union[Image.Image, str]:
    """The lazily opened image (header parsed, no pixels) or an error name from IMAGE_ERRORS;
    pass it to header_of() and then to reencode_image(opened=...) to parse the header once."""
    if not data:
        return EMPTY_IMAGE
    try:
        with warnings.catch_warnings():
            # We apply our own cap below; Pillow's global warning/limit would make it process-wide.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        return DECOMPRESSION_BOMB
    except UnidentifiedImageError:
        return NOT_AN_IMAGE
    except (OSError, ValueError, SyntaxError, EOFError):
        return UNDECODABLE_IMAGE
    if image.width * image.height > max_image_pixels:
        return DECOMPRESSION_BOMB
    return image


def _orientation(image: Image.Image) -> int:
    """EXIF orientation from the header only. PNG's getexif() would decode the whole image to look
    for an eXIf chunk after the pixels (which browsers ignore too), so only header EXIF is used."""
    if "exif" not in image.info:
        return 1
    try:
        value = int(image.getexif().get(0x0112, 1))  # 0x0112 = Orientation
    except Exception:  # malformed EXIF must not fail an otherwise readable image
        return 1
    return value if 1 <= value <= 8 else 1


def inspect_image(data: bytes, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
                  ) -> Union[ImageHeader, str]:
    """Header-only facts about `data`, or an error name from IMAGE_ERRORS. Decodes no pixels."""
    opened = open_image(data, max_image_pixels)
    return opened if isinstance(opened, str) else header_of(opened)


def header_of(image: Image.Image) -> ImageHeader:
    """Header-only facts of an opened image (sizes as displayed, after the EXIF orientation)."""
    orientation = _orientation(image)
    width, height = image.size
    if orientation in _TRANSPOSED_ORIENTATIONS:
        width, height = height, width
    return ImageHeader(format=image.format or "", width=width, height=height, mode=image.mode,
                       exif_orientation=orientation, n_frames=int(getattr(image, "n_frames", 1)))


def _sixteen_bit(image: Image.Image) -> bool:
    if image.mode in _SIXTEEN_BIT_MODES:
        return True
    tile = getattr(image, "tile", None) or []  # 16-bit RGB(A) PNGs open as RGB with rawmode RGB;16B
    return any(";16" in str(t[3][0] if isinstance(t[3], tuple) else t[3]) for t in tile if len(t) > 3)


def _depalette(image: Image.Image, conversions: list) -> Image.Image:
    has_alpha = "transparency" in image.info or image.palette.mode == "RGBA"
    conversions.append(ALPHA_ON_WHITE if has_alpha else PALETTE_TO_RGB)
    return image.convert("RGBA") if has_alpha else image.convert("RGB")


def _resize(image: Image.Image, max_shorter_side_px: int, conversions: list) -> Image.Image:
    short = min(image.size)
    if short <= max_shorter_side_px:
        return image
    width = max(1, round(image.width * max_shorter_side_px / short))
    height = max(1, round(image.height * max_shorter_side_px / short))
    conversions.append(RESIZED)
    return image.resize((width, height), Image.Resampling.BICUBIC, reducing_gap=3.0)


def _to_rgb(image: Image.Image, conversions: list) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "CMYK":
        conversions.append(CMYK_TO_RGB)
        return image.convert("RGB")
    if mode in _SIXTEEN_BIT_MODES:
        conversions.append(SIXTEEN_BIT_TO_8BIT)
        pixels = np.asarray(image, dtype=np.float64)
        scale = 255.0 / 65535.0  # 16-bit range to 8-bit; 32-bit "I" is clipped to 16 bits first
        pixels = np.clip(pixels, 0, 65535) * scale
        return Image.fromarray(np.rint(pixels).astype(np.uint8), "L").convert("RGB")
    if mode == "P":
        image = _depalette(image, conversions)
        mode = image.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        if ALPHA_ON_WHITE not in conversions:
            conversions.append(ALPHA_ON_WHITE)
        rgba = image if mode == "RGBA" else image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba)  # as fast as dropping alpha (convert("RGB"))
        return background
    if mode == "RGB":
        return image
    if mode == "L":
        conversions.append(GRAYSCALE_TO_RGB)
        return image.convert("RGB")
    conversions.append(OTHER_MODE_TO_RGB)
    return image.convert("RGB")


def reencode_image(
    data: bytes,
    max_shorter_side_px: int = 346,
    jpeg_quality: int = 90,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    opened: Optional[Image.Image] = None,
) -> Union[ReencodedImage, str]:
    """Decodes, orients, converts to RGB, caps the shorter side and re-encodes as JPEG.

    `opened`: open_image(data)'s result, if the caller has it (saves parsing the header again).
    Returns a ReencodedImage, or an error name from IMAGE_ERRORS.
    """
    image = opened if opened is not None else open_image(data, max_image_pixels)
    if isinstance(image, str):
        return image
    conversions = []
    orientation = _orientation(image)
    original_width, original_height = image.size
    if orientation in _TRANSPOSED_ORIENTATIONS:
        original_width, original_height = original_height, original_width
    try:
        if int(getattr(image, "n_frames", 1)) > 1:
            image.seek(0)
            conversions.append(ANIMATED_FIRST_FRAME)
        sixteen_bit_rgb = image.mode not in _SIXTEEN_BIT_MODES and _sixteen_bit(image)
        if image.format == "JPEG" and image.mode in ("RGB", "L", "CMYK"):
            # Let libjpeg decode at a reduced scale (1/2, 1/4, 1/8) when the target allows it.
            short = min(image.size)
            if short > 2 * max_shorter_side_px:
                target = (image.width * max_shorter_side_px // short + 1,
                          image.height * max_shorter_side_px // short + 1)
                image.draft(image.mode, target)
        image.load()
        if sixteen_bit_rgb:
            conversions.append(SIXTEEN_BIT_TO_8BIT)
        if orientation != 1:
            image = ImageOps.exif_transpose(image)
            conversions.append(EXIF_ROTATED)
        if image.mode == "P":
            image = _depalette(image, conversions)
        if image.mode not in _RESIZE_FIRST_MODES:  # alpha, CMYK, 16-bit, ...: RGB at full size
            image = _to_rgb(image, conversions)
        image = _to_rgb(_resize(image, max_shorter_side_px, conversions), conversions)
    except Image.DecompressionBombError:
        return DECOMPRESSION_BOMB
    except OSError as error:
        return TRUNCATED_IMAGE if "truncated" in str(error).lower() else UNDECODABLE_IMAGE
    except (ValueError, SyntaxError, EOFError, TypeError, IndexError, KeyError):
        return UNDECODABLE_IMAGE
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=jpeg_quality)
    return ReencodedImage(jpeg=out.getvalue(), width=image.width, height=image.height,
                          original_width=original_width, original_height=original_height,
                          conversions=tuple(conversions))


def sha256_hex(data: bytes) -> str:
    """Identity of "the same image": SHA-256 of the encoded bytes as found in the input."""
    return hashlib.sha256(data).hexdigest()
