"""Small generated images for the curation tests: every bad-input case of issue #2, as bytes."""
import io
import struct
import zlib

import numpy as np
from PIL import Image


def encode(image: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **kwargs)
    return out.getvalue()


def rgb(width: int, height: int, color=(200, 30, 30), fmt: str = "PNG") -> bytes:
    return encode(Image.new("RGB", (width, height), color), fmt)


def cmyk_jpeg(width: int = 300, height: int = 300) -> bytes:
    return encode(Image.new("CMYK", (width, height), (0, 255, 255, 0)), "JPEG", quality=95)  # red


def gray16_png(width: int = 300, height: int = 300, value: int = 65535) -> bytes:
    return encode(Image.fromarray(np.full((height, width), value, np.uint16)), "PNG")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def rgb16_png(width: int = 300, height: int = 300, value=(65535, 0, 0)) -> bytes:
    """A 16-bit-per-channel RGB PNG (Pillow cannot write these), written by hand."""
    row = b"\x00" + struct.pack(">HHH", *value) * width
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(row * height)) + _chunk(b"IEND", b""))


def bomb_png_header(width: int = 100_000, height: int = 100_000) -> bytes:
    """A PNG announcing width x height pixels (10 gigapixels by default) in a few bytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _chunk(b"IEND", b""))


def palette_alpha_png(width: int = 300, height: int = 300) -> bytes:
    """Palette image, index 0 fully transparent (left half), index 1 opaque blue (right half)."""
    image = Image.new("P", (width, height), 0)
    image.putpalette([0, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 6))
    image.paste(1, (width // 2, 0, width, height))
    return encode(image, "PNG", transparency=0)


def exif_rotated_jpeg(width: int = 400, height: int = 300, orientation: int = 6) -> bytes:
    """Stored width x height; EXIF orientation 6 means 'rotate 90 degrees clockwise to display'."""
    image = Image.new("RGB", (width, height), (0, 200, 0))
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(image, "JPEG", exif=exif.tobytes(), quality=95)


def animated_gif(width: int = 300, height: int = 300) -> bytes:
    frames = [Image.new("RGB", (width, height), c) for c in ((255, 0, 0), (0, 0, 255))]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def truncated(data: bytes, keep_fraction: float = 0.5) -> bytes:
    return data[: int(len(data) * keep_fraction)]


def noisy_png(width: int, height: int, seed: int = 0) -> bytes:
    """Incompressible pixels, so that truncating the file cuts pixel data."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return encode(Image.fromarray(pixels, "RGB"), "PNG")


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image
