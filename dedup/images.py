"""Image helpers of the weight-free embedder and the eval views: pHash, uniform-border trimming,
crops, mirror, PNG.

Decoding is the project's one decoder, schemas.image_decode.decode_rgb (EXIF orientation, alpha on
white, first frame, 16-bit to 8-bit, pixel cap).
"""
import io
from typing import Tuple

import imagehash
import numpy as np
from PIL import Image

# A margin row/column is "uniform" when every pixel in it is within this many levels, in each of R,
# G and B, of the border colour: wide enough for JPEG noise on flat colour (q >= 50), narrow enough
# that faint lines (light-grey line art) and neighbouring colours of equal luminance (flag stripes)
# count as content.
TRIM_TOLERANCE = 10
# The border colour (one of the four corner colours) must cover at least this share of the outermost
# ring of pixels (one whole side), else the image has no uniform margin (a photo, a full-bleed
# drawing) and is not trimmed. Low on purpose: a copy cropped into the content on three sides still
# has its fourth margin trimmed, as the original had.
TRIM_MIN_RING_SHARE = 0.25
# ... and, relative to the image's strongest contrast with the border colour, a pixel must differ by
# more than this share of it: JPEG ringing next to a strong edge (up to 7 px into the margin, a
# fraction of the edge's contrast) stays margin, faint line art on white stays content.
TRIM_RELATIVE_TOLERANCE = 0.25
TRIM_MIN_SIDE_PX = 4  # a content box smaller than this is noise on a blank canvas: keep the image
# Margins are trimmed again inside the box found, up to this many rounds in all, while a round
# cut all four sides: a border added all around a drawing on white (copy-detection family
# pad_border, a frame) leaves the white margin after its own colour is trimmed. On the tune split
# this took pad_border's recall from 0.33 to 0.66 with the weight-free default, others within
# +-0.01. A round that cut fewer sides ends it: a tricolour flag's first stripe is cut as a margin,
# and a second round would cut the third and leave the middle stripe (Italy then matched Peru).
TRIM_MAX_ROUNDS = 3


def phash64(image: Image.Image) -> int:
    """64-bit perceptual hash (DCT of the 32x32 luminance; imagehash.phash) as an unsigned int."""
    return int(str(imagehash.phash(image, hash_size=8)), 16)


def _row_and_column_differences(pixels: np.ndarray, colour: np.ndarray):
    """Largest difference from `colour` per row [H] and per column [W] (uint8). Works on the
    [H, W*C] view: contiguous reductions, ~0.1 ms for 170 x 170 RGB (max over the last axis of
    [H, W, 3] is ~20x slower)."""
    height, width, channels = pixels.shape
    flat = np.ascontiguousarray(pixels).reshape(height, width * channels)
    tiled = np.tile(colour, width)
    difference = np.maximum(flat, tiled)
    difference -= np.minimum(flat, tiled)
    row_max = difference.max(axis=1)
    col_max = difference.reshape(height, width, channels).max(axis=0).max(axis=1)
    return row_max, col_max


def content_box(pixels: np.ndarray, tolerance: int = TRIM_TOLERANCE) -> Tuple[int, int, int, int]:
    """(left, top, right, bottom) of `pixels` (uint8 [H, W, C] or [H, W]) without its uniform
    margins: content_box_once, repeated inside the box found while the last round cut all four
    sides (TRIM_MAX_ROUNDS rounds at most)."""
    left, top, right, bottom = 0, 0, pixels.shape[1], pixels.shape[0]
    for _ in range(TRIM_MAX_ROUNDS):
        width, height = right - left, bottom - top
        box = content_box_once(pixels[top:bottom, left:right], tolerance)
        left, top, right, bottom = left + box[0], top + box[1], left + box[2], top + box[3]
        if not (box[0] > 0 and box[1] > 0 and box[2] < width and box[3] < height):
            break
    return left, top, right, bottom


def content_box_once(pixels: np.ndarray, tolerance: int = TRIM_TOLERANCE) -> Tuple[int, int, int, int]:
    """One round of content_box: the box without the margins of one border colour.

    The border colour is the corner colour that the most pixels of the outermost ring match (all
    channels within +-tolerance). Rows and columns at the edges whose pixels all match it, within
    max(tolerance, TRIM_RELATIVE_TOLERANCE x the largest difference from it in the image), are
    margins. The whole image when less than TRIM_MIN_RING_SHARE of the ring matches, when nothing
    differs from the border colour, or when trimming would leave less than TRIM_MIN_SIDE_PX on a
    side.
    """
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    height, width = pixels.shape[:2]
    whole = (0, 0, width, height)
    if min(height, width) <= TRIM_MIN_SIDE_PX:
        return whole
    ring = np.concatenate([pixels[0], pixels[-1], pixels[1:-1, 0], pixels[1:-1, -1]])
    corners = np.stack([pixels[0, 0], pixels[0, -1], pixels[-1, 0], pixels[-1, -1]])
    differences = np.abs(ring[None].astype(np.int16) - corners[:, None].astype(np.int16))
    matches = (differences.max(axis=2) <= tolerance).sum(axis=1)  # ring pixels per corner colour
    best = int(np.argmax(matches))
    if matches[best] < TRIM_MIN_RING_SHARE * len(ring):
        return whole
    row_max, col_max = _row_and_column_differences(pixels, corners[best])
    limit = max(tolerance, TRIM_RELATIVE_TOLERANCE * int(row_max.max()))
    rows, cols = np.flatnonzero(row_max > limit), np.flatnonzero(col_max > limit)
    if rows.size == 0:
        return whole
    box = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
    if box[2] - box[0] < TRIM_MIN_SIDE_PX or box[3] - box[1] < TRIM_MIN_SIDE_PX:
        return whole
    return box


def trim_uniform_borders(image: Image.Image, tolerance: int = TRIM_TOLERANCE) -> Image.Image:
    """The RGB image without its uniform margins (see content_box)."""
    box = content_box(np.asarray(image.convert("RGB")), tolerance)
    return image if box == (0, 0) + image.size else image.crop(box)


def centre_crop(image: Image.Image, fraction: float) -> Image.Image:
    """The centre crop keeping `fraction` of each side."""
    return crop_fractions(image, (1 - fraction) / 2, (1 - fraction) / 2, fraction, fraction)


def fraction_box(size: Tuple[int, int], left: float, top: float, keep_width: float,
                 keep_height: float) -> Tuple[int, int, int, int]:
    """The pixel box (x0, y0, x1, y1) starting at (left, top) and keeping (keep_width,
    keep_height), all as fractions of the image's width and height."""
    width, height = size
    crop_w, crop_h = max(1, round(width * keep_width)), max(1, round(height * keep_height))
    x0 = min(max(0, round(width * left)), width - crop_w)
    y0 = min(max(0, round(height * top)), height - crop_h)
    return x0, y0, x0 + crop_w, y0 + crop_h


def crop_fractions(image: Image.Image, left: float, top: float, keep_width: float,
                   keep_height: float) -> Image.Image:
    """The crop of fraction_box."""
    return image.crop(fraction_box(image.size, left, top, keep_width, keep_height))


def encode_png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
