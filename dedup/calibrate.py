"""Threshold calibration for an embedder: augmented copies (positives) vs unrelated pairs, each
pair scored the way the stage decides.

The paper's 0.975 belongs to the paper's embedder (Appendix A). For another embedder (or other
view settings), take a set of evaluation images, make copies of each with the augmentation
families of dedup/augment.py (the one set of augmentations of the project: crops, rescales, flips,
overlays, colour changes, JPEG, combinations, the issue's `ordinary_copy`) as the training side
(stored as JPEG q90, like the pipeline stores images), pair every image with the other images as
negatives, and read recall per family, the false-positive rate (negatives above the threshold)
and the precision at a stated positive:negative mix, per threshold.

A pair's score is the stage's decision score (beam_stage): the eval image is indexed as its views
(beam_stage.eval_views) and the coarse cosine is the best over them; with the pixel embedder's
aligned check on, a pair whose coarse cosine is above `verify_candidates_above` scores its aligned
cosine (beam_stage.verify_candidates) and any other pair NOT_A_CANDIDATE (never a match); without
it, the coarse cosine. Pairs are scored one by one: the stage's cap of
`verify_max_candidates` eval images per training image is not modelled.
"""
import dataclasses
import hashlib
import io
import math
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from dedup import augment
from dedup.beam_stage import eval_detail_of, eval_views, verify_candidates
from dedup.config import DedupConfig
from schemas.image_decode import decode_rgb

NOT_A_CANDIDATE = -1.0  # score of a pair the aligned check never sees (coarse cosine too low)
TRAINING_JPEG_QUALITY = 90  # copies enter the training side as the pipeline stores images
DEFAULT_FAMILIES = tuple(augment.FAMILIES)
DEFAULT_THRESHOLDS = (0.8, 0.85, 0.9, 0.925, 0.95, 0.96, 0.97, 0.975, 0.98, 0.985, 0.99, 0.995)


@dataclasses.dataclass
class CalibrationData:
    positive_cosines: Dict[str, np.ndarray]  # family -> [N] score(original, its copy)
    negative_cosines: np.ndarray  # [M] score of pairs of different images


def _jpeg(image: Image.Image, quality: int = TRAINING_JPEG_QUALITY) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, format="JPEG", quality=quality)
    return out.getvalue()


class EvalSideScorer:
    """The eval images as the stage indexes them (views, details) and the stage's pair score."""

    def __init__(self, images: Sequence[bytes], embed: Callable[[List[bytes]], np.ndarray],
                 config: DedupConfig):
        self.config = config
        self.embed = embed
        owner, names, blobs = [], [], []
        for i, image_bytes in enumerate(images):
            for (_, view), view_bytes in eval_views((str(i), image_bytes), config):
                owner.append(i)
                names.append(view)
                blobs.append(view_bytes)
        self.view_vectors = embed(blobs)
        self.view_names = names
        self.starts = np.flatnonzero(np.r_[True, np.diff(owner) != 0])  # views are contiguous
        self.ends = np.r_[self.starts[1:], len(owner)]
        self.details = ({str(i): eval_detail_of(b, config) for i, b in enumerate(images)}
                        if config.verifies else {})

    def coarse(self, training_vectors: np.ndarray, eval_rows: Sequence[int]):
        """Per pair (training row r, eval image eval_rows[r]): best cosine over the eval image's
        views and that view's name."""
        best, views = np.empty(len(eval_rows), np.float32), []
        for r, e in enumerate(eval_rows):
            cosines = self.view_vectors[self.starts[e]:self.ends[e]] @ training_vectors[r]
            j = int(np.argmax(cosines))
            best[r] = cosines[j]
            views.append(self.view_names[self.starts[e] + j])
        return best, views

    def _verified(self, training_bytes: bytes, eval_row: int, view: str, coarse: float) -> float:
        key = str(eval_row)
        if self.details.get(key) is None:
            return NOT_A_CANDIDATE
        verified = verify_candidates(training_bytes, [(key, view, coarse)], self.details, self.config)
        return NOT_A_CANDIDATE if verified is None else verified[1]

    def scores(self, training: Sequence[bytes], eval_rows: Sequence[int],
               training_vectors: Optional[np.ndarray] = None) -> np.ndarray:
        """The decision score of each (training[r], eval image eval_rows[r]) pair."""
        vectors = self.embed(list(training)) if training_vectors is None else training_vectors
        coarse, views = self.coarse(vectors, eval_rows)
        if not self.config.verifies:
            return coarse
        out = np.full(len(eval_rows), NOT_A_CANDIDATE, np.float32)
        for r in np.flatnonzero(coarse > self.config.verify_candidates_above):
            out[r] = self._verified(training[r], int(eval_rows[r]), views[r], float(coarse[r]))
        return out

    def all_scores(self, training: Sequence[bytes], training_vectors: np.ndarray,
                   chunk_rows: int = 256) -> np.ndarray:
        """[len(training), eval images] decision scores of every pair (matrix products; the
        aligned check only for the pairs above verify_candidates_above)."""
        best = np.empty((len(training), len(self.starts)), np.float32)
        for lo in range(0, len(training), chunk_rows):
            block = training_vectors[lo:lo + chunk_rows] @ self.view_vectors.T
            best[lo:lo + chunk_rows] = np.maximum.reduceat(block, self.starts, axis=1)
        if not self.config.verifies:
            return best
        out = np.full(best.shape, NOT_A_CANDIDATE, np.float32)
        rows, cols = np.nonzero(best > self.config.verify_candidates_above)
        coarse, views = self.coarse(training_vectors[rows], cols)
        for k, (r, e) in enumerate(zip(rows, cols)):
            out[r, e] = self._verified(training[r], int(e), views[k], float(coarse[k]))
        return out


def make_pairs(images: Sequence[bytes], embed: Callable[[List[bytes]], np.ndarray],
               config: DedupConfig, families: Sequence[str] = DEFAULT_FAMILIES,
               negatives_per_image: int = 0, seed: int = 0) -> CalibrationData:
    """Positives: one copy per image and family (seeded by (seed, family, image)); negatives:
    each image's JPEG as a training image against other images (all of them when
    negatives_per_image is 0, else that many random ones), byte-identical images left out."""
    scorer = EvalSideScorer(images, embed, config)
    decoded = [decode_rgb(b, draft_side_px=None) for b in images]
    everyone = np.arange(len(images))
    positives = {}
    for family in families:
        family_id = augment.FAMILIES.index(family)
        copies = [_jpeg(augment.apply(image, family, np.random.default_rng([seed, family_id, i])))
                  for i, image in enumerate(decoded)]
        positives[family] = scorer.scores(copies, everyone)
    training = [_jpeg(image) for image in decoded]
    vectors = embed(training)
    digests = np.array([hashlib.sha256(b).hexdigest() for b in images])
    n = len(images)
    if negatives_per_image <= 0 or negatives_per_image >= n - 1:  # every pair
        matrix = scorer.all_scores(training, vectors)  # [training image, eval image]
        different = digests[:, None] != digests[None, :]  # also leaves out the diagonal
        return CalibrationData(positives, matrix[different])
    rng = np.random.default_rng(seed)
    second = np.repeat(everyone, negatives_per_image)  # the training image
    first = (second + rng.integers(1, max(n, 2), size=second.size)) % max(n, 1)  # the eval image
    keep = digests[first] != digests[second]
    first, second = first[keep], second[keep]
    negatives = scorer.scores([training[j] for j in second], first, vectors[second])
    return CalibrationData(positives, negatives)


def threshold_table(data: CalibrationData, thresholds: Sequence[float],
                    positive_fraction: float = 0.5) -> List[dict]:
    """Per threshold (strict >): recall per family and overall, FPR, precision at the mix."""
    all_positive = np.concatenate(list(data.positive_cosines.values()))
    rows = []
    for t in thresholds:
        recall = float(np.mean(all_positive > t)) if all_positive.size else 0.0
        fpr = float(np.mean(data.negative_cosines > t)) if data.negative_cosines.size else 0.0
        tp, fp = positive_fraction * recall, (1 - positive_fraction) * fpr
        rows.append({
            "threshold": float(t), "recall": recall, "false_positive_rate": fpr,
            "false_positives": int(np.sum(data.negative_cosines > t)),
            "negatives": int(data.negative_cosines.size),
            "precision": tp / (tp + fp) if tp + fp > 0 else 1.0,
            "recall_by_family": {k: float(np.mean(v > t)) for k, v in data.positive_cosines.items()},
        })
    return rows


def choose_threshold(data: CalibrationData, target_false_positive_rate: Optional[float] = None,
                     target_recall: Optional[float] = None,
                     target_family: str = "ordinary_copy") -> Tuple[float, dict]:
    """(threshold, how it was chosen): the lowest threshold whose false-positive rate is at most
    the target (the most recall at that FPR), or the highest whose recall on `target_family` is
    at least the target (the fewest false positives at that recall). Rounded to 1e-4, on the safe
    side of the target."""
    if (target_false_positive_rate is None) == (target_recall is None):
        raise ValueError("give exactly one of target_false_positive_rate, target_recall")
    if target_false_positive_rate is not None:
        negatives = np.sort(data.negative_cosines)[::-1]
        allowed = int(math.floor(target_false_positive_rate * negatives.size))
        chosen_by = {"target": "false_positive_rate", "value": target_false_positive_rate,
                     "negatives": int(negatives.size)}
        if allowed >= negatives.size:
            return -1.0, chosen_by
        threshold = math.ceil(float(negatives[allowed]) * 1e4) / 1e4  # > it: at most `allowed` above
        if allowed == 0:
            chosen_by["note"] = (f"no negative above it: the target is below 1/{negatives.size}, "
                                 "the resolution of this many negatives")
        return min(threshold, 1.0), chosen_by
    if target_family not in data.positive_cosines:
        raise ValueError(f"target family {target_family!r} was not measured "
                         f"(have {sorted(data.positive_cosines)})")
    positives = np.sort(data.positive_cosines[target_family])[::-1]
    needed = int(math.ceil(target_recall * positives.size))
    chosen_by = {"target": "recall", "value": target_recall, "family": target_family,
                 "positives": int(positives.size)}
    if needed <= 0:
        return 1.0, chosen_by
    threshold = math.floor(float(positives[needed - 1]) * 1e4) / 1e4
    if threshold >= positives[needed - 1]:  # strict >: step below the needed-th best positive
        threshold = float(np.nextafter(np.float32(positives[needed - 1]), np.float32(-2)))
    return threshold, chosen_by


def measured_at(data: CalibrationData, threshold: float, positive_fraction: float) -> dict:
    row, = threshold_table(data, [threshold], positive_fraction)
    return {"recall_by_family": row["recall_by_family"], "recall": row["recall"],
            "false_positive_rate": row["false_positive_rate"],
            "false_positives": row["false_positives"], "negatives": row["negatives"],
            "positives_per_family": int(next(iter(data.positive_cosines.values())).size)
            if data.positive_cosines else 0,
            "precision": row["precision"], "positive_fraction": positive_fraction}


def format_table(rows: List[dict]) -> str:
    names = list(rows[0]["recall_by_family"]) if rows else []
    head = ["threshold", "precision", "recall", "FPR", "FP"] + names
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [f"{r['threshold']:.4f}", f"{r['precision']:.4f}", f"{r['recall']:.4f}",
                 f"{r['false_positive_rate']:.2e}", str(r["false_positives"])]
        cells += [f"{r['recall_by_family'][n]:.3f}" for n in names]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
