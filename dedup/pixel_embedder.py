"""Weight-free default embedder: a blurred, contrast-normalized luminance thumbnail of the image
without its uniform margins, plus an aligned colour check of candidate pairs.

Why this works for near-duplicates (measured with `align-dedup calibrate`, docs/DEDUP.md):
* resizes and re-encodes: the image is box-filtered down to `side_px` x `side_px` and blurred, which
  removes the resampling and compression detail where copies differ;
* small colour changes (brightness, contrast, saturation, hue): only luminance is used, and the
  thumbnail is mean-subtracted and L2-normalized, so the cosine of two embeddings is the Pearson
  correlation of the thumbnails, invariant to affine changes of brightness;
* padding and crops of margins: uniform margins (clip art on white, letterboxing) are trimmed on
  both sides before the thumbnail is made (dedup/images.py content_box);
* crops into the content are its weak point (content moves across the grid): the eval side indexes
  offset-crop views (dedup/beam_stage.py eval_views), and candidate pairs are re-scored by
  `aligned_cosine`, which finds the crop of the eval image that lines up with the training image
  (a small search over its four edges) and compares colour thumbnails at a finer grid.
Images that cannot be decoded embed as the zero vector (cosine 0 with everything: never a match).
"""
import dataclasses
from typing import List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from PIL import Image
from scipy import ndimage

from dedup.images import (TRIM_MAX_ROUNDS, TRIM_MIN_RING_SHARE, TRIM_RELATIVE_TOLERANCE,
                          TRIM_TOLERANCE, content_box, phash64)
from schemas.image_decode import decode_rgb

# Both sides are embedded without their uniform margins (dedup/images.py content_box).
TRIM_BORDERS = True
# The aligned check (second pass): colour thumbnails of DETAIL_SIDE_PX (training image) compared
# with crops of the eval image kept at EVAL_DETAIL_SIDE_PX, both blurred by DETAIL_BLUR_SIGMA_PX.
DETAIL_SIDE_PX = 48
EVAL_DETAIL_SIDE_PX = 96
DETAIL_BLUR_SIGMA_PX = 1.0
# The eval detail keeps this much of the image around its content box (fraction of the box's side
# on each side), so that a copy whose margins were trimmed differently still lines up.
EVAL_DETAIL_MARGIN = 0.15
# Edge search: coordinate steps as fractions of the eval detail's side, coarse to fine; each edge
# moves at most ALIGN_MAX_SHIFT from where the matched view put it (the views are ALIGN_MAX_SHIFT
# apart or less), so the search lines up a copy but cannot zoom into an unrelated part.
ALIGN_STEPS = (0.02, 0.01, 0.005)
ALIGN_MAX_SHIFT = 0.06
# After the coarsest step, a pair still below this is given up (its score is returned as is): the
# finer steps add a few hundredths, not enough to reach a near-duplicate threshold (~0.95).
ALIGN_GIVE_UP_BELOW = 0.9
# A pair scoring below this where the matched view puts the crop is no copy: ordinary copies start
# at 0.73 or more (1st percentile, tune split), unrelated candidate pairs at ~0.3 on average.
ALIGN_GIVE_UP_AT_START = 0.6
ALIGN_GOOD_ENOUGH = 0.995  # stop as soon as a crop scores above this: a copy, whatever the rest
ALIGN_MAX_MOVES_PER_STEP = 3  # passes over the four edges per step size
# The aligned score may cap the aligned cosine by where the two thumbnails differ
# (DedupConfig.verify_local_weight, off by default): a copy differs from its original a little
# everywhere (re-encoding, brightness, a crop lined up to a pixel), a variant of a drawing in one
# place (a wink for a smile, a padlock open or shut, another medal), and so does an overlay.
# With unit thumbnails t and c, 1 - cos = |t - c|^2 / 2; the score is
# min(cos, 1 - weight x the largest |t - c|^2 in a window of LOCAL_WINDOW_PX (a quarter of the
# side; windows every half window, 7 x 7). At weight 2 no window may hold more than a quarter of
# the squared difference the whole image is allowed at the threshold.
LOCAL_WINDOW_PX = 12
# Brightening clips at white: a copy brightened by g is min(255, g x original), not g x original,
# so the centred cosine (blind to a gain alone) drops wherever a colour channel saturates (light
# fills, yellows, skin). Issue #11's ordinary copies are brightened or darkened by up to 8 %; on the
# tune split the brightened half lost 3.4 % of their own pairs at 0.99 and the darkened half 0.4 %
# (docs/DEDUP.md, "Brightness clips"). A pair aligned to between ALIGN_GIVE_UP_BELOW and
# ALIGN_GOOD_ENOUGH is also scored against the eval crop brightened by these gains in turn and
# clipped (at the eval detail's 96 px, before the blur), while the score rises. Darkening needs
# nothing: it is a gain, no clipping.
BRIGHTENING_GAINS = (1.025, 1.05, 1.075, 1.1)


class PixelEmbedding(NamedTuple):
    """The pixel embedding and, from the same decode, the 64-bit pHash (None: not computed)."""
    vector: np.ndarray
    phash: Optional[int]


@dataclasses.dataclass(frozen=True)
class EvalDetail:
    """An eval image for the aligned check: RGB uint8 [S, S, 3] of its content box plus a margin
    (stretched to a square), and where the content box lies in it as cuts (left, top, right,
    bottom), fractions of the detail's side."""
    pixels: np.ndarray
    content_cuts: Tuple[float, float, float, float]


class PixelEmbedder:
    name = "pixel"

    def __init__(self, side_px: int = 32, blur_sigma_px: float = 1.0,
                 trim_borders: bool = TRIM_BORDERS):
        self.side_px = side_px
        self.blur_sigma_px = blur_sigma_px
        self.trim_borders = trim_borders
        self.dim = side_px * side_px

    @property
    def parameters(self) -> dict:
        """What defines its embeddings and aligned cosines (a calibration file records them; a
        threshold calibrated with other values does not apply)."""
        return {"side_px": self.side_px, "blur_sigma_px": self.blur_sigma_px,
                "trim_borders": self.trim_borders,
                "trim": {"tolerance": TRIM_TOLERANCE, "relative_tolerance": TRIM_RELATIVE_TOLERANCE,
                         "min_ring_share": TRIM_MIN_RING_SHARE, "max_rounds": TRIM_MAX_ROUNDS},
                "aligned_check": {"detail_side_px": DETAIL_SIDE_PX,
                                  "eval_detail_side_px": EVAL_DETAIL_SIDE_PX,
                                  "blur_sigma_px": DETAIL_BLUR_SIGMA_PX, "colour": "RGB",
                                  "eval_margin": EVAL_DETAIL_MARGIN, "steps": list(ALIGN_STEPS),
                                  "max_shift": ALIGN_MAX_SHIFT, "give_up_below": ALIGN_GIVE_UP_BELOW,
                                  "give_up_at_start": ALIGN_GIVE_UP_AT_START,
                                  "good_enough": ALIGN_GOOD_ENOUGH,
                                  "max_moves_per_step": ALIGN_MAX_MOVES_PER_STEP,
                                  "local_window_px": LOCAL_WINDOW_PX,
                                  "brightening_gains": list(BRIGHTENING_GAINS)}}

    def embed_image(self, image: Image.Image) -> np.ndarray:
        return self._embed(image)[0]

    def embedded_box(self, image: Image.Image) -> Tuple[int, int, int, int]:
        """The box of `image` its embedding is made of: its content box (trim_borders), or the
        whole image when it has no margin or its content alone is flat."""
        return self._embed(image)[1]

    def _embed(self, image: Image.Image):
        whole = (0, 0) + image.size
        if self.trim_borders:
            box = content_box(np.asarray(image.convert("RGB")))
            if box != whole:
                trimmed = self._thumbnail(image.crop(box))
                if trimmed is not None:
                    return trimmed, box
                # the content is flat (e.g. the middle stripe of a flag): the whole image instead
        thumb = self._thumbnail(image)
        return (np.zeros(self.dim, np.float32) if thumb is None else thumb), whole

    def _thumbnail(self, image: Image.Image) -> Optional[np.ndarray]:
        luminance = image.convert("L")
        filter_ = Image.BOX if min(luminance.size) >= self.side_px else Image.BILINEAR
        thumb = np.asarray(luminance.resize((self.side_px, self.side_px), filter_), np.float32)
        if self.blur_sigma_px:
            thumb = ndimage.gaussian_filter(thumb, self.blur_sigma_px, mode="nearest")
        thumb = thumb - thumb.mean()
        norm = float(np.linalg.norm(thumb))
        if norm < 1e-3:  # a flat image has no pattern to compare: zero vector, never a match
            return None
        return (thumb / norm).ravel().astype(np.float32)

    def embed_bytes(self, image_bytes: bytes) -> np.ndarray:
        try:
            image = decode_rgb(image_bytes, draft_side_px=4 * self.side_px)
        except Exception:  # noqa: BLE001 - unreadable training bytes: zero vector, counted by caller
            return np.zeros(self.dim, np.float32)
        return self.embed_image(image)

    def embed_with_phash(self, image_bytes: bytes) -> PixelEmbedding:
        """One decode for both the embedding and the pHash first pass (stage hot path)."""
        try:
            image = decode_rgb(image_bytes, draft_side_px=4 * self.side_px)
        except Exception:  # noqa: BLE001 - unreadable training bytes: zero vector, no hash
            return PixelEmbedding(np.zeros(self.dim, np.float32), None)
        return PixelEmbedding(self.embed_image(image), phash64(image))

    def embed(self, images: Sequence[bytes]) -> np.ndarray:
        rows: List[np.ndarray] = [self.embed_bytes(b) for b in images]
        return np.stack(rows) if rows else np.zeros((0, self.dim), np.float32)


def _resize(image: Image.Image, side_px: int, box=None) -> Image.Image:
    width, height = image.size if box is None else (box[2] - box[0], box[3] - box[1])
    filter_ = Image.BOX if min(width, height) >= side_px else Image.BILINEAR
    return image.resize((side_px, side_px), filter_, box=box)


def eval_detail(image: Image.Image, trim_borders: bool = True) -> EvalDetail:
    """The eval side of the aligned check (kept in the index, EVAL_DETAIL_SIDE_PX^2 x 3 bytes):
    the content box plus EVAL_DETAIL_MARGIN, box-filtered to EVAL_DETAIL_SIDE_PX."""
    image = image.convert("RGB")
    width, height = image.size
    left, top, right, bottom = (content_box(np.asarray(image)) if trim_borders
                                else (0, 0, width, height))
    margin_x, margin_y = EVAL_DETAIL_MARGIN * (right - left), EVAL_DETAIL_MARGIN * (bottom - top)
    x0, y0 = max(0.0, left - margin_x), max(0.0, top - margin_y)
    x1, y1 = min(float(width), right + margin_x), min(float(height), bottom + margin_y)
    cuts = ((left - x0) / (x1 - x0), (top - y0) / (y1 - y0), (x1 - right) / (x1 - x0),
            (y1 - bottom) / (y1 - y0))
    pixels = np.asarray(_resize(image, EVAL_DETAIL_SIDE_PX, (x0, y0, x1, y1)))
    return EvalDetail(pixels, tuple(float(c) for c in cuts))


def training_detail(image: Image.Image, trim_borders: bool = True) -> np.ndarray:
    """The training side of the aligned check: the trimmed image box-filtered to DETAIL_SIDE_PX,
    blurred, centred and normalized (zero if flat); values in [row, channel, column] order."""
    image = image.convert("RGB")
    if trim_borders:  # the box the embedding was made of (the coarse match)
        box = PixelEmbedder(trim_borders=True).embedded_box(image)
        if box != (0, 0) + image.size:
            image = image.crop(box)
    pixels = np.asarray(_resize(image, DETAIL_SIDE_PX), np.float32)
    pixels = ndimage.gaussian_filter(pixels, (DETAIL_BLUR_SIGMA_PX, DETAIL_BLUR_SIGMA_PX, 0),
                                     mode="nearest")
    return _unit(pixels.transpose(0, 2, 1).ravel())


def _unit(vector: np.ndarray) -> np.ndarray:
    vector = vector - vector.mean()
    norm = float(np.dot(vector, vector)) ** 0.5
    return (vector / norm).astype(np.float32) if norm > 1e-3 else np.zeros(vector.size, np.float32)


def _blur_matrix() -> np.ndarray:
    """[S, S] linear operator of the Gaussian blur (DETAIL_BLUR_SIGMA_PX, edges repeated) that
    training_detail applies along each axis: the blur of e_k is column k."""
    eye = np.eye(DETAIL_SIDE_PX, dtype=np.float64)
    return ndimage.gaussian_filter1d(eye, DETAIL_BLUR_SIGMA_PX, axis=0, mode="nearest")


def _resample_matrix(low_cut: float, high_cut: float, blur: np.ndarray) -> np.ndarray:
    """[DETAIL_SIDE_PX, EVAL_DETAIL_SIDE_PX] float32: the span of the eval detail between the two
    cuts (fractions of its side) resized to DETAIL_SIDE_PX with Pillow's BILINEAR weights (a
    triangle widened by the scale when shrinking, normalized), then blurred."""
    size, out = EVAL_DETAIL_SIDE_PX, DETAIL_SIDE_PX
    start, stop = low_cut * size, size - high_cut * size
    scale = (stop - start) / out
    width = max(scale, 1.0)
    centres = start + (np.arange(out) + 0.5) * scale
    weights = np.maximum(0.0, 1.0 - np.abs(np.arange(size)[None, :] + 0.5 - centres[:, None]) / width)
    weights /= np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)
    return (blur @ weights).astype(np.float32)


class _Aligner:
    """Scores crops of one eval detail against one training detail. A crop is
    R(top, bottom) . pixels . R(left, right)^T per channel (_resample_matrix); the row pass is
    cached, so a move of the left or right edge costs one [48 x 96] product per channel
    (~20x fewer operations than resizing and blurring the crop with Pillow and scipy)."""

    def __init__(self, pixels: np.ndarray, training: np.ndarray):
        self.pixels = pixels.astype(np.float32).reshape(EVAL_DETAIL_SIDE_PX, -1)  # [S, S*3]
        self.training = training
        self.blur = _blur_matrix()
        self._rows: dict = {}
        self._columns: dict = {}

    def score(self, cuts, gain: float = 1.0) -> float:
        """Cosine with the crop between `cuts`; gain > 1: of the eval detail brightened by gain
        and clipped at white (BRIGHTENING_GAINS)."""
        crop, norm = self._centred_crop(cuts, gain)
        return float(np.dot(crop, self.training)) / norm if norm > 1e-3 else 0.0

    def crop(self, cuts, gain: float = 1.0) -> np.ndarray:
        """The crop between `cuts`, as a unit thumbnail like the training detail (zero if flat)."""
        crop, norm = self._centred_crop(cuts, gain)
        return crop / norm if norm > 1e-3 else np.zeros_like(crop)

    def _centred_crop(self, cuts, gain: float = 1.0) -> Tuple[np.ndarray, float]:
        left, top, right, bottom = (round(c, 6) for c in cuts)
        rows = self._rows.get((top, bottom, gain))
        if rows is None:  # [48, S, 3] -> [48, 3, S]; gain > 1: brightened, clipped at white
            pixels = np.minimum(self.pixels * gain, 255.0) if gain != 1.0 else self.pixels
            resampled = _resample_matrix(top, bottom, self.blur) @ pixels
            rows = self._rows[(top, bottom, gain)] = np.ascontiguousarray(
                resampled.reshape(DETAIL_SIDE_PX, EVAL_DETAIL_SIDE_PX, 3).transpose(0, 2, 1))
        columns = self._columns.get((left, right))
        if columns is None:
            columns = self._columns[(left, right)] = _resample_matrix(left, right, self.blur).T
        crop = (rows @ columns).ravel()  # [48 rows, 3 channels, 48 columns]
        crop -= crop.mean()
        return crop, float(np.dot(crop, crop)) ** 0.5


def start_cuts(detail: EvalDetail, view: Tuple[float, float, float, float],
               mirrored: bool = False) -> Tuple[float, float, float, float]:
    """Cuts of the eval detail (mirrored: of its mirror image) that correspond to a view (left,
    top, width, height as fractions of the content box, of the mirror image when mirrored): where
    the aligned search starts."""
    cl, ct, cr, cb = detail.content_cuts
    if mirrored:
        cl, cr = cr, cl
    view_left, view_top, view_width, view_height = view
    inner_w, inner_h = 1 - cl - cr, 1 - ct - cb
    return (cl + view_left * inner_w, ct + view_top * inner_h,
            cr + (1 - view_left - view_width) * inner_w, cb + (1 - view_top - view_height) * inner_h)


def aligned_cosine(detail: EvalDetail, training: np.ndarray,
                   view: Tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0),
                   mirrored: bool = False) -> float:
    """Cosine of the training detail and the best-aligned crop of the eval detail (see _align)."""
    return _align(detail, training, view, mirrored)[0]


def aligned_score(detail: EvalDetail, training: np.ndarray,
                  view: Tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0),
                  mirrored: bool = False, local_weight: float = 0.0) -> float:
    """What the aligned check decides on: the aligned cosine, or the cosine with the best-aligned
    crop brightened by one of BRIGHTENING_GAINS and clipped if that is higher; capped
    (local_weight > 0) by 1 - local_weight x worst_window_residual of that crop."""
    cosine, aligner, cuts = _align(detail, training, view, mirrored)
    if aligner is None or cosine < ALIGN_GIVE_UP_BELOW:  # no copy: nothing more to look at
        return cosine
    best_gain = 1.0
    for gain in BRIGHTENING_GAINS if cosine <= ALIGN_GOOD_ENOUGH else ():
        score = aligner.score(cuts, gain)
        if score <= cosine:  # past the copy's gain (or it was not brightened): the rest are worse
            break
        cosine, best_gain = score, gain
    if local_weight <= 0:
        return cosine
    residual = worst_window_residual(training, aligner.crop(cuts, best_gain))
    return min(cosine, 1.0 - local_weight * residual)


def worst_window_residual(training: np.ndarray, crop: np.ndarray) -> float:
    """Largest |training - crop|^2 (unit thumbnails in [row, channel, column] order) summed over
    a LOCAL_WINDOW_PX square, of the windows every LOCAL_WINDOW_PX / 2 pixels."""
    side, window = DETAIL_SIDE_PX, LOCAL_WINDOW_PX
    energy = np.square(training - crop).reshape(side, 3, side).sum(axis=1)  # [rows, columns]
    summed = np.pad(energy.astype(np.float64), ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    starts = np.arange(0, side - window + 1, window // 2)
    top, left = starts[:, None], starts[None, :]
    windows = (summed[top + window, left + window] - summed[top, left + window]
               - summed[top + window, left] + summed[top, left])
    return float(windows.max())


def _align(detail: EvalDetail, training: np.ndarray, view: Tuple[float, float, float, float],
           mirrored: bool) -> Tuple[float, Optional["_Aligner"], List[float]]:
    """(cosine, aligner, cuts) of the best-aligned crop of the eval detail (aligner None: flat
    training detail, nothing aligned).

    Coordinate ascent over the crop's four edges (ALIGN_STEPS), starting at `view` (the eval view
    the coarse search matched; mirrored: the mirror image of the eval image); each edge stays
    within ALIGN_MAX_SHIFT of its start. About 25-40 crops scored: run only for candidate pairs.
    """
    if not training.any():
        return 0.0, None, []
    pixels = detail.pixels[:, ::-1] if mirrored else detail.pixels
    cuts_start = start_cuts(detail, view, mirrored)
    aligner = _Aligner(pixels, training)
    low = [max(0.0, c - ALIGN_MAX_SHIFT) for c in cuts_start]
    high = [max(0.0, c + ALIGN_MAX_SHIFT) for c in cuts_start]
    cuts = [max(0.0, c) for c in cuts_start]
    best = aligner.score(cuts)
    if best < ALIGN_GIVE_UP_AT_START:
        return best, aligner, cuts
    for level, step in enumerate(ALIGN_STEPS):
        if level == 1 and best < ALIGN_GIVE_UP_BELOW:
            break
        improved, moves = True, 0
        while improved and moves < ALIGN_MAX_MOVES_PER_STEP and best <= ALIGN_GOOD_ENOUGH:
            improved, moves = False, moves + 1
            for edge in range(4):
                for sign in (1, -1):
                    trial = list(cuts)
                    trial[edge] = min(high[edge], max(low[edge], trial[edge] + sign * step))
                    if trial == cuts:
                        continue
                    score = aligner.score(trial)
                    if score > best:
                        best, cuts, improved = score, trial, True
    return best, aligner, cuts
