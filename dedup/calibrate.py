"""Threshold calibration for an embedder: augmented copies (positives) vs unrelated pairs.

The paper's 0.975 belongs to the paper's embedder (Appendix A). For another embedder, take a set of
evaluation images, make near-duplicate copies of each (the edits web copies go through: resizes,
re-encodes, crops, small colour changes) and draw pairs of different images (negatives), then read
recall (positives above the threshold), the false-positive rate (negatives above it) and the
precision at a stated positive:negative mix, per threshold.
"""
import dataclasses
import hashlib
import io
from typing import Callable, Dict, List, Sequence

import numpy as np
from PIL import Image, ImageEnhance

from dedup.images import centre_crop
from schemas.image_decode import decode_rgb


def _jpeg(image: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _scale(image: Image.Image, factor: float) -> Image.Image:
    w, h = image.size
    return image.resize((max(8, round(w * factor)), max(8, round(h * factor))), Image.BICUBIC)


def _corner_crop(image: Image.Image, fraction: float) -> Image.Image:
    w, h = image.size
    return image.crop((0, 0, max(1, round(w * fraction)), max(1, round(h * fraction))))


AUGMENTATIONS: Dict[str, Callable[[Image.Image], bytes]] = {
    "resize_0.5x": lambda im: _png(_scale(im, 0.5)),
    "resize_1.5x": lambda im: _png(_scale(im, 1.5)),
    "jpeg_q50": lambda im: _jpeg(im, 50),
    "crop_centre_0.9": lambda im: _png(centre_crop(im, 0.9)),
    "crop_centre_0.8": lambda im: _png(centre_crop(im, 0.8)),
    "crop_corner_0.9": lambda im: _png(_corner_crop(im, 0.9)),
    "brightness_0.9": lambda im: _png(ImageEnhance.Brightness(im).enhance(0.9)),
    "saturation_1.2": lambda im: _png(ImageEnhance.Color(im).enhance(1.2)),
    "contrast_0.9": lambda im: _png(ImageEnhance.Contrast(im).enhance(0.9)),
    "resize_0.7x+jpeg_q75+brightness_1.05": lambda im: _jpeg(
        ImageEnhance.Brightness(_scale(im, 0.7)).enhance(1.05), 75),
}

DEFAULT_THRESHOLDS = (0.8, 0.85, 0.9, 0.925, 0.95, 0.96, 0.97, 0.975, 0.98, 0.985, 0.99, 0.995)


@dataclasses.dataclass
class CalibrationData:
    positive_cosines: Dict[str, np.ndarray]  # augmentation -> [N] cosine(original, copy)
    negative_cosines: np.ndarray  # [M] cosine of pairs of different images


def make_pairs(images: Sequence[bytes], embed: Callable[[List[bytes]], np.ndarray],
               augmentations: Sequence[str], negatives_per_image: int, seed: int = 0,
               eval_crop_fractions: Sequence[float] = ()) -> CalibrationData:
    """Embeds originals (the eval side, with its crop views) and copies (the training side).

    A pair's cosine is the best over the eval image's views, as in the search. Negatives are
    random pairs of images with different bytes.
    """
    decoded = [decode_rgb(b, draft_side_px=None) for b in images]
    originals = embed(list(images))
    views = [originals] + [embed([_png(centre_crop(im, f)) for im in decoded])
                           for f in eval_crop_fractions]

    def best_cosine(eval_rows: np.ndarray, training: np.ndarray) -> np.ndarray:
        return np.max([np.sum(v[eval_rows] * training, axis=1) for v in views], axis=0)

    everyone = np.arange(len(images))
    positives = {}
    for name in augmentations:
        copies = embed([AUGMENTATIONS[name](im) for im in decoded])
        positives[name] = best_cosine(everyone, copies)
    digests = np.array([hashlib.sha256(b).hexdigest() for b in images])
    rng = np.random.default_rng(seed)
    n = len(images)
    first = np.repeat(np.arange(n), negatives_per_image)
    second = (first + rng.integers(1, max(n, 2), size=first.size)) % max(n, 1)
    keep = digests[first] != digests[second]  # byte-identical images are not negatives
    negatives = best_cosine(first[keep], originals[second[keep]])
    return CalibrationData(positives, negatives)


def threshold_table(data: CalibrationData, thresholds: Sequence[float],
                    positive_fraction: float = 0.5) -> List[dict]:
    """Per threshold (strict >): recall per augmentation and overall, FPR, precision at the mix."""
    all_positive = np.concatenate(list(data.positive_cosines.values()))
    rows = []
    for t in thresholds:
        recall = float(np.mean(all_positive > t)) if all_positive.size else 0.0
        fpr = float(np.mean(data.negative_cosines > t)) if data.negative_cosines.size else 0.0
        tp, fp = positive_fraction * recall, (1 - positive_fraction) * fpr
        rows.append({
            "threshold": t, "recall": recall, "false_positive_rate": fpr,
            "precision": tp / (tp + fp) if tp + fp > 0 else 1.0,
            "recall_by_augmentation": {k: float(np.mean(v > t)) for k, v in data.positive_cosines.items()},
        })
    return rows


def format_table(rows: List[dict]) -> str:
    names = list(rows[0]["recall_by_augmentation"]) if rows else []
    head = ["threshold", "precision", "recall", "FPR"] + names
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [f"{r['threshold']:.3f}", f"{r['precision']:.4f}", f"{r['recall']:.4f}",
                 f"{r['false_positive_rate']:.2e}"]
        cells += [f"{r['recall_by_augmentation'][n]:.3f}" for n in names]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
