"""The project's one image decoder: header inspection, decode to RGB, re-encoding, thumbnails.

Used by curation (pipeline/), the near-duplicate stage (dedup/), evaluation and search (trainer/),
so every side applies the same EXIF orientation, the same alpha-on-white compositing, the same
first-frame rule for animations and the same pixel cap (decompression bombs) to the same bytes.

For curation, two steps, so that the paper's image filters (section 3) never pay for decoding pixels:

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


class ImageDecodeError(ValueError):
    """Bytes that do not decode to an RGB image; `name` is one of IMAGE_ERRORS."""

    def __init__(self, name: str, detail: str = ""):
        super().__init__(f"{name}: {detail}" if detail else name)
        self.name = name


def decode_rgb(data: bytes, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
               draft_side_px: Optional[int] = None) -> Image.Image:
    """Encoded bytes -> loaded 8-bit RGB image: EXIF orientation applied, first frame of
    animations, alpha (and palette transparency) composited on white, 16-bit scaled to 8-bit.

    `draft_side_px` lets the JPEG decoder skip DCT detail when only about that size is needed.
    Raises ImageDecodeError (a ValueError) naming one of IMAGE_ERRORS; never decodes more than
    `max_image_pixels` pixels.
    """
    image = open_image(data, max_image_pixels)
    if isinstance(image, str):
        raise ImageDecodeError(image)
    conversions: list = []
    try:
        if draft_side_px and image.format == "JPEG":
            image.draft("RGB", (draft_side_px, draft_side_px))
        if int(getattr(image, "n_frames", 1)) > 1:
            image.seek(0)
        image.load()
        if _orientation(image) != 1:
            image = ImageOps.exif_transpose(image)
        return _to_rgb(image, conversions)
    except Image.DecompressionBombError as error:
        raise ImageDecodeError(DECOMPRESSION_BOMB, str(error)) from error
    except OSError as error:
        name = TRUNCATED_IMAGE if "truncated" in str(error).lower() else UNDECODABLE_IMAGE
        raise ImageDecodeError(name, str(error)) from error
    except (ValueError, SyntaxError, EOFError, TypeError, IndexError, KeyError) as error:
        raise ImageDecodeError(UNDECODABLE_IMAGE, f"{type(error).__name__}: {error}") from error


def thumbnail_jpeg(data: bytes, max_side_px: int = 128, quality: int = 85,
                   max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> Optional[bytes]:
    """RGB JPEG with the longer side at most `max_side_px` (never upscaled), decoded by
    decode_rgb (same orientation, alpha and pixel cap); None when the bytes do not decode."""
    try:
        image = decode_rgb(data, max_image_pixels, draft_side_px=max_side_px)
    except ImageDecodeError:
        return None
    image.thumbnail((max_side_px, max_side_px))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def model_input_bytes(data: bytes, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> bytes:
    """The bytes to hand a model whose own decoder is TensorFlow's (the export's embed_image):
    8-bit RGB/gray JPEGs and PNGs without EXIF rotation, transparency or animation as they are
    (decoded the same way the trainer decodes the curated JPEGs), anything else decoded here (orientation, alpha on white, first
    frame, pixel cap) and re-encoded losslessly as PNG. TensorFlow's decode_image alone has no
    pixel cap, ignores EXIF orientation and drops alpha instead of compositing it on white.
    Raises ImageDecodeError like decode_rgb."""
    image = open_image(data, max_image_pixels)
    if isinstance(image, str):
        raise ImageDecodeError(image)
    plain = (image.format in ("JPEG", "PNG") and image.mode in ("RGB", "L")
             and _orientation(image) == 1 and "transparency" not in image.info
             and int(getattr(image, "n_frames", 1)) == 1 and not _sixteen_bit(image))
    rgb = decode_rgb(data, max_image_pixels)  # also proves the pixels decode (truncation)
    if plain:
        return data
    out = io.BytesIO()
    rgb.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def sha256_hex(data: bytes) -> str:
    """Identity of "the same image": SHA-256 of the encoded bytes as found in the input."""
    return hashlib.sha256(data).hexdigest()
