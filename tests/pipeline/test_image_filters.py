"""Boundary tests of the paper's image filters (section 3): shorter side > 200 px, ratio < 3."""
import pytest

from pipeline import reasons
from pipeline.image_filters import aspect_ratio, filter_image_size


@pytest.mark.parametrize("width, height, expected", [
    (200, 300, (False, reasons.IMAGE_TOO_SMALL)),  # 200 px is not > 200
    (300, 200, (False, reasons.IMAGE_TOO_SMALL)),
    (201, 300, (True, None)),  # 201 px is kept
    (201, 201, (True, None)),
    (201, 603, (False, reasons.ASPECT_RATIO)),  # exactly 3.0 is not < 3
    (603, 201, (False, reasons.ASPECT_RATIO)),
    (201, 602, (True, None)),  # 2.995 is kept
    (300, 900, (False, reasons.ASPECT_RATIO)),
    (300, 899, (True, None)),
    (100, 1000, (False, reasons.IMAGE_TOO_SMALL)),  # both fail: first in DROP_ORDER wins
    (0, 500, (False, reasons.IMAGE_TOO_SMALL)),
])
def test_paper_thresholds_are_strict(width, height, expected):
    assert filter_image_size(width, height) == expected


def test_thresholds_are_parameters():
    assert filter_image_size(150, 150, min_image_side_px=149) == (True, None)
    assert filter_image_size(300, 600, max_aspect_ratio=2.0) == (False, reasons.ASPECT_RATIO)
    assert filter_image_size(300, 599, max_aspect_ratio=2.0) == (True, None)


def test_aspect_ratio_is_longer_over_shorter():
    assert aspect_ratio(300, 900) == 3.0 and aspect_ratio(900, 300) == 3.0
    assert aspect_ratio(0, 10) == float("inf")
