"""dedup/augment.py: sizes (hand-computed), RGB output, determinism, combinations, ordinary_copy.

Crop and border sizes are checked with a stand-in generator that always draws the low (or high)
end of every range, so the expected sizes can be worked out by hand from the docstrings.
"""
import io

import numpy as np
import pytest
from PIL import Image

from dedup import augment
from tests.dedup.fixtures import make_image

W, H = 200, 100  # not square: a swapped width/height shows


class Edge:
    """A numpy-Generator stand-in: uniform() gives the low or high end, integers() the low end."""

    def __init__(self, high: bool):
        self.high = high

    def uniform(self, low=0.0, high=1.0, size=None):
        value = high if self.high else low
        return np.full(size, value) if size is not None else value

    def integers(self, low, high=None, size=None):
        value = low if high is not None else 0
        return np.full(size, value) if size is not None else value

    def random(self):
        return 0.0


@pytest.fixture(scope="module")
def image():
    return make_image(3, size=(W, H))


@pytest.mark.parametrize("family", augment.FAMILIES)
def test_every_family_returns_rgb(image, family):
    out = augment.apply(image, family, np.random.default_rng(0))
    assert out.mode == "RGB" and min(out.size) > 0


@pytest.mark.parametrize("family", ["rescale_crop", "hflip", "rotate_10", "color_jitter", "grayscale",
                                    "blur", "jpeg_30_90", "text_overlay", "emoji_overlay"])
def test_size_preserving_families(image, family):
    assert augment.apply(image, family, np.random.default_rng(1)).size == (W, H)


@pytest.mark.parametrize("family, high, size", [
    # keep 1 - f of each side: f in [min, max] of the family's name (per side)
    ("offset_crop_5", False, (200, 100)), ("offset_crop_5", True, (190, 95)),
    ("offset_crop_10", False, (190, 95)), ("offset_crop_10", True, (180, 90)),
    ("offset_crop_20", True, (160, 80)), ("offset_crop_30", True, (140, 70)),
    ("corner_crop_10", True, (180, 90)), ("corner_crop_20", False, (180, 90)),
    ("corner_crop_30", True, (140, 70)),
    # 5-20 % of the side added on each side: 200 + 2 * 10 = 220 ... 200 + 2 * 40 = 280
    ("pad_border", False, (220, 110)), ("pad_border", True, (280, 140)),
    # x1.3 -> 260 x 130, 10 % of that cut on every side -> 208 x 104
    ("ordinary_copy", True, (208, 104)), ("ordinary_copy", False, (200, 100)),
])
def test_hand_computed_sizes(image, family, high, size):
    assert augment.apply(image, family, Edge(high)).size == size


def test_corner_crop_is_anchored_at_a_corner(image):
    out = augment.apply(image, "corner_crop_10", Edge(True))  # integers() -> 0: top-left corner
    assert np.array_equal(np.asarray(out), np.asarray(image.crop((0, 0, 180, 90))))


@pytest.mark.parametrize("family", augment.FAMILIES)
def test_deterministic_with_a_seed(image, family):
    def png(seed):
        out = io.BytesIO()
        augment.apply(image, family, np.random.default_rng(seed)).save(out, "PNG")
        return out.getvalue()

    assert png(5) == png(5)


@pytest.mark.parametrize("family, count", [("combo2", 2), ("combo3", 3)])
def test_combinations_apply_that_many_distinct_families(image, family, count, monkeypatch):
    calls, real = [], augment.apply

    def recording(img, name, rng, overlays=None):
        calls.append(name)
        return real(img, name, rng, overlays)

    monkeypatch.setattr(augment, "apply", recording)
    for seed in range(10):
        calls.clear()
        augment.apply(image, family, np.random.default_rng(seed))
        inner = calls[1:]
        assert len(inner) == count and len(set(inner)) == count
        assert set(inner) <= set(augment._COMBINABLE)  # noqa: SLF001 - no heavy crops in combos


def test_ordinary_copy_size_range(image):
    # scale 1.0-1.3, then up to 10 % off each side: each side in [0.8 W, 1.3 W] (+-1 px rounding)
    for seed in range(30):
        width, height = augment.apply(image, "ordinary_copy", np.random.default_rng(seed)).size
        assert 0.8 * W - 1 <= width <= 1.3 * W + 1 and 0.8 * H - 1 <= height <= 1.3 * H + 1


def test_emoji_overlay_pastes_a_given_sticker(image):
    sticker = Image.new("RGBA", (16, 16), (255, 0, 0, 255))
    out = augment.apply(image, "emoji_overlay", Edge(True), overlays=[sticker])
    assert out.size == (W, H) and out.getpixel((5, 5)) == (255, 0, 0)  # 35 % of W at (0, 0)


def test_families_list_and_random_view(image):
    groups = list(augment.GEOMETRIC) + list(augment.PHOTOMETRIC) + list(augment.OVERLAYS)
    assert augment.FAMILIES == groups + ["combo2", "combo3", "ordinary_copy"]
    assert augment.random_view(image, np.random.default_rng(0)).mode == "RGB"
