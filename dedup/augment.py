"""Copy-detection augmentations: how web copies of an image differ from it.

The families follow the image copy detection literature (DISC21, Douze et al. 2021; SSCD,
Pizzi et al. 2022): crops (offset and corner), rescale + crop, flips, small rotations, padding and
borders, text and emoji overlays, colour jitter, grayscale, blur, JPEG re-encoding, and
combinations of two or three. They serve twice: `bench/copy_detection.py` measures each embedder
per family on held-out images, and `align-dedup train-embedder` (dedup/train_embedder.py) trains
the learned embedder on augmented views of *other* images.

Every function is `(PIL RGB image, numpy Generator) -> PIL RGB image`; `augment(image, family,
rng)` applies one family. Crop fractions are per side: "crop 10 %" keeps 90 % of the width and
90 % of the height.
"""
import io
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

_WORDS = ("SALE", "copyright", "www.example.com", "LOL", "meme", "2021", "photo by", "share",
          "best price", "new", "#trending", "free download")


def _crop(image: Image.Image, keep: float, rng: np.random.Generator, corner: bool) -> Image.Image:
    width, height = image.size
    crop_w, crop_h = max(1, round(width * keep)), max(1, round(height * keep))
    if corner:
        left = (width - crop_w) * int(rng.integers(0, 2))
        top = (height - crop_h) * int(rng.integers(0, 2))
    else:
        left = int(rng.integers(0, width - crop_w + 1))
        top = int(rng.integers(0, height - crop_h + 1))
    return image.crop((left, top, left + crop_w, top + crop_h))


def offset_crop(max_fraction: float, min_fraction: float = 0.0) -> Callable:
    """A crop keeping 1-f of each side, f uniform in [min_fraction, max_fraction], anywhere."""
    return lambda image, rng: _crop(image, 1 - rng.uniform(min_fraction, max_fraction), rng, False)


def corner_crop(max_fraction: float, min_fraction: float = 0.0) -> Callable:
    """A crop keeping 1-f of each side, anchored at a random corner."""
    return lambda image, rng: _crop(image, 1 - rng.uniform(min_fraction, max_fraction), rng, True)


def rescale_crop(image, rng):
    """Upscale 1.0-1.3x, then crop back to the original size anywhere (a zoom of up to 23 %)."""
    scale = rng.uniform(1.0, 1.3)
    width, height = image.size
    big = image.resize((round(width * scale), round(height * scale)), Image.Resampling.BICUBIC)
    left = int(rng.integers(0, big.width - width + 1))
    top = int(rng.integers(0, big.height - height + 1))
    return big.crop((left, top, left + width, top + height))


def hflip(image, rng):
    return ImageOps.mirror(image)


def rotate(image, rng):
    """A rotation of up to +-10 degrees, the corners filled with white."""
    angle = rng.uniform(3.0, 10.0) * (1 if rng.random() < 0.5 else -1)
    return image.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=(255, 255, 255))


def pad_border(image, rng):
    """A border of 5-20 % of the side on every side, in one random colour."""
    colour = tuple(int(c) for c in rng.integers(0, 256, 3))
    pad = [round(rng.uniform(0.05, 0.20) * side) for side in image.size * 2]
    return ImageOps.expand(image, border=(pad[0], pad[1], pad[2], pad[3]), fill=colour)


def _font(size_px: int):
    try:
        return ImageFont.load_default(size=size_px)
    except TypeError:  # Pillow < 10.1: no sized default font
        return ImageFont.load_default()


def text_overlay(image, rng):
    """One to three words in a random colour, 8-20 % of the height, anywhere."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    for _ in range(int(rng.integers(1, 4))):
        size = max(8, round(image.height * rng.uniform(0.08, 0.20)))
        text = str(rng.choice(_WORDS))
        xy = (int(rng.integers(0, max(1, image.width // 2))), int(rng.integers(0, max(1, image.height - size))))
        draw.text(xy, text, fill=tuple(int(c) for c in rng.integers(0, 256, 3)), font=_font(size))
    return out


def emoji_overlay(image, rng, overlays: Optional[Sequence[Image.Image]] = None):
    """An emoji (or, without overlay images, a filled disc) of 15-35 % of the width, anywhere."""
    out = image.copy()
    side = max(4, round(image.width * rng.uniform(0.15, 0.35)))
    left = int(rng.integers(0, max(1, image.width - side)))
    top = int(rng.integers(0, max(1, image.height - side)))
    if overlays:
        sticker = overlays[int(rng.integers(0, len(overlays)))].convert("RGBA").resize((side, side))
        out.paste(sticker, (left, top), sticker)
    else:
        ImageDraw.Draw(out).ellipse((left, top, left + side, top + side),
                                    fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    return out


def color_jitter(image, rng):
    """Brightness, contrast and saturation x0.7-1.3 each, a hue shift of up to 0.05 turn."""
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        image = enhancer(image).enhance(rng.uniform(0.7, 1.3))
    hsv = np.asarray(image.convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(np.int16) + int(rng.uniform(-0.05, 0.05) * 255)) % 256
    return Image.fromarray(hsv, "HSV").convert("RGB")


def grayscale(image, rng):
    return image.convert("L").convert("RGB")


def blur(image, rng):
    """Gaussian blur of 0.5-1.5 % of the shorter side (1-3 px at 200 px)."""
    return image.filter(ImageFilter.GaussianBlur(min(image.size) * rng.uniform(0.005, 0.015)))


def jpeg(image, rng, low: int = 30, high: int = 90):
    out = io.BytesIO()
    image.save(out, "JPEG", quality=int(rng.integers(low, high + 1)))
    return Image.open(io.BytesIO(out.getvalue())).convert("RGB")


def brightness(image, rng, max_change: float = 0.08):
    return ImageEnhance.Brightness(image).enhance(1 + rng.uniform(-max_change, max_change))


def ordinary_copy(image, rng):
    """The copies `align-curate --eval_images` missed in issue #11: rescaled 1.0-1.3x, cropped by
    up to 10 % on each side independently, brightness +-8 %, JPEG q70-90."""
    scale = rng.uniform(1.0, 1.3)
    width, height = image.size
    image = image.resize((round(width * scale), round(height * scale)), Image.Resampling.BICUBIC)
    cuts = rng.uniform(0.0, 0.10, 4) * np.array(image.size * 2)
    image = image.crop((round(cuts[0]), round(cuts[1]), image.width - round(cuts[2]),
                        image.height - round(cuts[3])))
    return jpeg(brightness(image, rng), rng, 70, 90)


GEOMETRIC: Dict[str, Callable] = {
    "offset_crop_5": offset_crop(0.05),
    "offset_crop_10": offset_crop(0.10, 0.05),
    "offset_crop_20": offset_crop(0.20, 0.10),
    "offset_crop_30": offset_crop(0.30, 0.20),
    "corner_crop_10": corner_crop(0.10, 0.05),
    "corner_crop_20": corner_crop(0.20, 0.10),
    "corner_crop_30": corner_crop(0.30, 0.20),
    "rescale_crop": rescale_crop,
    "hflip": hflip,
    "rotate_10": rotate,
    "pad_border": pad_border,
}
PHOTOMETRIC: Dict[str, Callable] = {
    "color_jitter": color_jitter,
    "grayscale": grayscale,
    "blur": blur,
    "jpeg_30_90": jpeg,
}
OVERLAYS: Dict[str, Callable] = {"text_overlay": text_overlay, "emoji_overlay": emoji_overlay}
# Families that are parts of combinations (the heavy crops are left out: a combination with a
# 30 % crop and an overlay is no longer an "ordinary copy").
_COMBINABLE = [n for n in list(GEOMETRIC) + list(PHOTOMETRIC) + list(OVERLAYS)
               if n not in ("offset_crop_30", "corner_crop_30", "corner_crop_20", "offset_crop_20")]


def apply(image: Image.Image, family: str, rng: np.random.Generator,
          overlays: Optional[Sequence[Image.Image]] = None) -> Image.Image:
    """One augmentation family applied to an RGB image (see FAMILIES)."""
    image = image.convert("RGB")
    if family == "emoji_overlay":
        return emoji_overlay(image, rng, overlays)
    if family in ("combo2", "combo3"):
        for name in rng.choice(_COMBINABLE, size=int(family[-1]), replace=False):
            image = apply(image, str(name), rng, overlays)
        return image
    if family == "ordinary_copy":
        return ordinary_copy(image, rng)
    return {**GEOMETRIC, **PHOTOMETRIC, **OVERLAYS}[family](image, rng)


FAMILIES: List[str] = (list(GEOMETRIC) + list(PHOTOMETRIC) + list(OVERLAYS)
                       + ["combo2", "combo3", "ordinary_copy"])


def random_view(image: Image.Image, rng: np.random.Generator,
                overlays: Optional[Sequence[Image.Image]] = None) -> Image.Image:
    """A training view for the learned embedder: one to three random families (any crop size)."""
    names = list(GEOMETRIC) + list(PHOTOMETRIC) + list(OVERLAYS) + ["ordinary_copy"]
    for name in rng.choice(names, size=int(rng.integers(1, 4)), replace=False):
        image = apply(image, str(name), rng, overlays)
    return image
