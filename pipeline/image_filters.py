"""The paper's image-based filters (Jia et al. 2021, section 3), applied to header sizes.

"We remove pornographic images and keep only images whose shorter dimension is larger than 200
pixels and aspect ratio is smaller than 3." Both inequalities are strict: a 200 px shorter side is
dropped, 201 px is kept; an aspect ratio of exactly 3.0 is dropped. Sizes are as displayed (after
EXIF orientation), which changes neither the shorter side nor the ratio.
"""
from typing import Optional, Tuple

from pipeline import reasons

MIN_IMAGE_SIDE_PX = 200  # paper 3: shorter side must be > 200 px
MAX_ASPECT_RATIO = 3.0  # paper 3: longer/shorter side must be < 3


def aspect_ratio(width: int, height: int) -> float:
    """Longer side over shorter side (inf when a side is zero)."""
    short, long = sorted((width, height))
    return long / short if short > 0 else float("inf")


def filter_image_size(
    width: int,
    height: int,
    min_image_side_px: int = MIN_IMAGE_SIDE_PX,
    max_aspect_ratio: float = MAX_ASPECT_RATIO,
) -> Tuple[bool, Optional[str]]:
    """(keep, reason): reasons.IMAGE_TOO_SMALL if the shorter side <= min_image_side_px, else
    reasons.ASPECT_RATIO if longer/shorter >= max_aspect_ratio (the first in reasons.DROP_ORDER)."""
    if min(width, height) <= min_image_side_px:
        return False, reasons.IMAGE_TOO_SMALL
    # long / short >= r  <=>  long >= r * short; compared exactly for integer sides and ratios.
    if max(width, height) >= max_aspect_ratio * min(width, height):
        return False, reasons.ASPECT_RATIO
    return True, None
