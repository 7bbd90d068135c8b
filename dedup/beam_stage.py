"""`FindNearDuplicatesOfEval`: the Beam stage of ALIGN Appendix A for `align-curate`.

    matches = candidates | FindNearDuplicatesOfEval(eval_image_globs, dedup_config)
    # candidates: PCollection[(key, image_bytes)] of training pairs
    # matches:    PCollection[(key, {"eval_key": str, "cosine": float, "method": str})], one best
    #             match per near-duplicate training element; method is "aligned" (pixel embedder:
    #             bucketed search, then the aligned check, whose cosine it reports), "embedding"
    #             (bucketed search, no aligned check: SavedModel) or "phash" (first pass)

Shape for 1.8B training images (docs/DEDUP.md): the eval side (10^5..10^6 images) is read,
embedded and bucketed into a side input; every worker builds the bucket index from it ONCE per
process (`beam.utils.shared.Shared`); the training side is streamed through embed -> top-10
clusters -> 120 bucket lookups -> cosines with the few eval images found, all fused in one stage:
no shuffle of the training set at all, let alone a 120x one.

With the pixel embedder (the default) an eval image is indexed as several views (eval_views: the
whole image, offset crops of it without its uniform margins, optionally its mirror image), and a
training image's candidates (coarse cosine > verify_candidates_above) are re-scored by the aligned
colour check (verify_candidates, pixel_embedder.aligned_score: the aligned cosine, optionally
capped where the difference lies in one place), whose score then decides (method "aligned").
The same functions serve benchmarks outside Beam:

    eval_views(item, config)            -> ((eval_key, view), bytes) to embed, the whole image first
    view_geometry(view)                 -> (left, top, width, height, mirrored) of a view
    eval_detail_of(image_bytes, config) -> the eval image's EvalDetail for the aligned check (or None)
    verify_candidates(image_bytes, candidates, details, config) -> (eval_key, aligned score) or None

Eval images that cannot be read (corrupt, decompression bombs, damaged shards: dedup/eval_inputs.py)
do not fail the job: after the stage is applied, `stage.eval_errors` is a PCollection of dicts
{"eval_key", "file", "error", "detail"}, one per unusable eval image or damaged file, for the
caller to count and list (stats.json); they are also counted (Beam metric
dedup/eval_images_unreadable) and logged as one loud warning. Such images were NOT compared with
the training set: their near-duplicates may stay in it.
"""
import dataclasses
import logging
import uuid
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import apache_beam as beam
import numpy as np
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
from apache_beam.utils import shared

from PIL import Image, ImageOps
from threadpoolctl import ThreadpoolController

from dedup.config import PIXEL_EMBEDDER, DedupConfig
from dedup.embedders import make_model_handler
from dedup.eval_inputs import (WARN_FIRST_KEYS, EvalSource, expand_eval_sources, is_eval_error,
                               read_eval_source, warn_unreadable_eval_images)
from dedup.images import encode_png, fraction_box, phash64, trim_uniform_borders
from dedup.index import EvalIndex
from dedup.kmeans import fit_centroids, load_centroids
from dedup.kmeans_beam import FitCentroidsOnAll
from dedup import pixel_embedder
from dedup.pixel_embedder import EvalDetail, PixelEmbedding
from schemas.image_decode import decode_rgb

FULL_VIEW = "full"
MIRROR_VIEW = "mirror"
# Eval images are scaled down to this longer side before their crop views are cut (the pixel
# embedder reduces every view to 32 px; a training image is decoded at >= 128 px).
EVAL_VIEW_MAX_SIDE_PX = 512
NEAR_DUPLICATE_OF_EVAL = "near_duplicate_of_eval"  # the drop reason, = pipeline.reasons's
METRICS_NAMESPACE = "dedup"
EVAL_ERRORS = "eval_errors"  # tag of the unreadable eval images (FindNearDuplicatesOfEval.eval_errors)


Geometry = Tuple[float, float, float, float, bool]  # left, top, width, height (fractions), mirrored


def view_geometries(config: DedupConfig) -> List[Tuple[str, Geometry]]:
    """(view name, geometry) of every eval view of `config`, the whole image first.

    Offset crops: each side cut by 0 or by each of config.eval_view_cut_fractions, independently
    ((1 + n)^4 views with the whole one); then config.eval_crop_fractions as centre crops; then
    the mirror image (config.eval_view_mirror). Fractions are of the image without its uniform
    margins when the pixel embedder trims them (it trims training images the same way)."""
    views: List[Tuple[str, Geometry]] = [(FULL_VIEW, (0.0, 0.0, 1.0, 1.0, False))]
    cuts = (0.0,) + tuple(config.eval_view_cut_fractions)
    for left in cuts:
        for top in cuts:
            for right in cuts:
                for bottom in cuts:
                    if left or top or right or bottom:
                        views.append((cut_view_name(left, top, right, bottom),
                                      (left, top, 1 - left - right, 1 - top - bottom, False)))
    for fraction in config.eval_crop_fractions:
        offset = (1 - fraction) / 2
        views.append((f"crop{fraction:g}", (offset, offset, fraction, fraction, False)))
    if config.eval_view_mirror:
        views.append((MIRROR_VIEW, (0.0, 0.0, 1.0, 1.0, True)))
    return views


def view_geometry(view: str) -> Geometry:
    """The geometry of a view name made by eval_views (see view_geometries)."""
    if view == FULL_VIEW:
        return 0.0, 0.0, 1.0, 1.0, False
    if view == MIRROR_VIEW:
        return 0.0, 0.0, 1.0, 1.0, True
    if view.startswith(MIRROR_VIEW + " "):
        return view_geometry(view[len(MIRROR_VIEW) + 1:])[:4] + (True,)
    if view.startswith("crop"):
        fraction = float(view[4:])
        return (1 - fraction) / 2, (1 - fraction) / 2, fraction, fraction, False
    if view.startswith("cut "):
        left, top, right, bottom = (float(part[1:]) for part in view[4:].split())
        return left, top, 1 - left - right, 1 - top - bottom, False
    raise ValueError(f"not a view name of eval_views: {view!r}")


def _trims(config: DedupConfig) -> bool:
    """Views are cut from the trimmed image when the embedder's inputs are trimmed (pixel; a
    SavedModel with savedmodel_trim_borders)."""
    if config.embedder == PIXEL_EMBEDDER:
        return pixel_embedder.TRIM_BORDERS
    return config.savedmodel_trim_borders


def _capped(image: Image.Image) -> Image.Image:
    if max(image.size) > EVAL_VIEW_MAX_SIDE_PX:
        image = image.copy()
        image.thumbnail((EVAL_VIEW_MAX_SIDE_PX, EVAL_VIEW_MAX_SIDE_PX), Image.Resampling.BOX)
    return image


def _view_base(image: Image.Image, config: DedupConfig) -> Image.Image:
    image = _capped(image)
    return trim_uniform_borders(image) if _trims(config) else image


def cut_view_name(left: float, top: float, right: float, bottom: float) -> str:
    """The name of the crop view cutting these fractions off the four sides."""
    return "cut " + " ".join(f"{side}{round(value, 4):g}" for side, value in
                             zip("ltrb", (left, top, right, bottom)))


def eval_views(item: Tuple[str, bytes], config: DedupConfig):
    """((eval_key, view), bytes) for the views of view_geometries(config), eval side only: the
    image's own bytes for the whole view, a PNG for the others.

    A crop view is named by the part of the image its embedding is made of ("cut l.. t.. r..
    b..", fractions of the image the views are cut from): with the pixel embedder, the crop after
    the embedder's own trimming of it (a cut that removes a frame or a stray mark at the edge can
    leave more margin to trim; PixelEmbedder.embedded_box), so that the aligned check starts where
    the coarse match was made. A view whose embedding would repeat one already made is skipped."""
    eval_key, image_bytes = item
    yield (eval_key, FULL_VIEW), image_bytes
    views = view_geometries(config)[1:]
    if not views:
        return
    try:  # read_eval_source checked the image decodes (JPEGs at draft size, hence the guard)
        base = _view_base(decode_rgb(image_bytes, draft_side_px=None), config)
    except Exception:  # noqa: BLE001 - the full view is still indexed; only the others are lost
        logging.warning("dedup: eval image %r has only its whole view: it does not decode at "
                        "full size", eval_key, exc_info=True)
        return
    width, height = base.size
    embedder = pixel_embedder.PixelEmbedder() if _trims(config) else None
    seen = {(0, 0, width, height, False)}  # the whole view
    for name, (left, top, keep_width, keep_height, mirrored) in views:
        image = ImageOps.mirror(base) if mirrored else base
        crop = fraction_box(base.size, left, top, keep_width, keep_height)
        embedded = crop  # the part of the image the view's embedding is made of
        if embedder is not None and crop != (0, 0, width, height):
            x0, y0 = crop[:2]
            inner = embedder.embedded_box(image.crop(crop))
            embedded = (x0 + inner[0], y0 + inner[1], x0 + inner[2], y0 + inner[3])
        if embedded + (mirrored,) in seen:
            continue
        seen.add(embedded + (mirrored,))
        if embedded != (0, 0, width, height):
            name = cut_view_name(embedded[0] / width, embedded[1] / height,
                                 1 - embedded[2] / width, 1 - embedded[3] / height)
            if mirrored:
                name = MIRROR_VIEW + " " + name
        yield (eval_key, name), encode_png(image.crop(crop))


def eval_detail_of(image_bytes: bytes, config: DedupConfig) -> Optional[EvalDetail]:
    """The eval image's detail for the aligned check; None when the config does not verify or the
    image does not decode."""
    if not config.verifies:
        return None
    try:
        image = decode_rgb(image_bytes, draft_side_px=None)
    except Exception:  # noqa: BLE001 - no detail: its candidates keep their coarse cosine out
        return None
    return pixel_embedder.eval_detail(_capped(image), pixel_embedder.TRIM_BORDERS)


def to_eval_detail(item, config: DedupConfig):
    """(eval_key, bytes) -> (eval_key, EvalDetail), none for images without one."""
    eval_key, image_bytes = item
    detail = eval_detail_of(image_bytes, config)
    if detail is not None:
        yield eval_key, detail


_THREADPOOLS: List[ThreadpoolController] = []  # found once per process (a scan of loaded libraries)


def _one_blas_thread():
    """Context: BLAS on one thread (threadpoolctl), the libraries looked up once per process."""
    if not _THREADPOOLS:
        _THREADPOOLS.append(ThreadpoolController())
    return _THREADPOOLS[0].limit(limits=1, user_api="blas")


def verify_candidates(image_bytes: bytes, candidates: Sequence[Tuple[str, str, float]],
                      details: Dict[str, EvalDetail], config: DedupConfig
                      ) -> Optional[Tuple[str, float]]:
    """The second pass: (eval_key, aligned score) of the best of a training image's candidates,
    or None when none could be checked.

    candidates: (eval_key, view, coarse cosine), best coarse first; the first
    config.verify_max_candidates with coarse cosine > config.verify_candidates_above are aligned
    (pixel_embedder.aligned_score, starting from the matched view). The caller compares the
    result with config.cosine_threshold."""
    chosen = [c for c in candidates
              if c[2] > config.verify_candidates_above and details.get(c[0]) is not None]
    chosen = chosen[:config.verify_max_candidates]
    if not chosen:
        return None
    try:
        image = decode_rgb(image_bytes, draft_side_px=128)
    except Exception:  # noqa: BLE001 - undecodable training bytes: nothing to align
        return None
    training = pixel_embedder.training_detail(image, pixel_embedder.TRIM_BORDERS)
    best = None
    # The check is ~2,000 products of [3 x 96] x [96 x 48] matrices: a multi-threaded BLAS only
    # adds hand-offs (10x slower per check on 2 busy cores, docs/BENCHMARKS.md); workers run
    # one check per thread anyway.
    with _one_blas_thread():
        for eval_key, view, _ in chosen:
            left, top, width, height, mirrored = view_geometry(view)
            score = pixel_embedder.aligned_score(details[eval_key], training,
                                                 (left, top, width, height), mirrored,
                                                 config.verify_local_weight)
            if best is None or score > best[1]:
                best = (eval_key, score)
    return best


def safe_phash(image_bytes: bytes) -> Optional[int]:
    try:
        return phash64(decode_rgb(image_bytes, draft_side_px=128))
    except Exception:  # noqa: BLE001 - undecodable training bytes: no hash, no pHash match
        return None


def vector_of(prediction) -> np.ndarray:
    inference = prediction.inference
    vector = inference.vector if isinstance(inference, PixelEmbedding) else inference
    return np.asarray(vector, dtype=np.float32)


def phash_of(prediction) -> Optional[int]:
    """The pHash the pixel embedder computed from its decode, else one more decode."""
    if isinstance(prediction.inference, PixelEmbedding):
        return prediction.inference.phash
    return safe_phash(prediction.example)


def to_eval_record(item, use_phash: bool):
    """(eval_key, view), PredictionResult -> (eval_key, view, embedding, pHash of the full view)."""
    (eval_key, view), prediction = item
    phash = phash_of(prediction) if use_phash and view == FULL_VIEW else None
    return eval_key, view, vector_of(prediction), phash


class ReadEvalSourceFn(beam.DoFn):
    """EvalSource -> its good (eval_key, bytes); its eval_error dicts on the EVAL_ERRORS output."""

    def __init__(self):
        self._read = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "eval_images_read")
        self._unreadable = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "eval_images_unreadable")

    def process(self, source: EvalSource):
        for item in read_eval_source(source):
            if is_eval_error(item):
                self._unreadable.inc()
                yield beam.pvalue.TaggedOutput(EVAL_ERRORS, item)
            else:
                self._read.inc()
                yield item


class SummarizeEvalErrorsFn(beam.CombineFn):
    """eval_error dicts -> (count, the WARN_FIRST_KEYS smallest keys), for one warning per run."""

    def create_accumulator(self):
        return 0, []

    def add_input(self, accumulator, error):
        return self.merge_accumulators([accumulator, (1, [error["eval_key"]])])

    def merge_accumulators(self, accumulators):
        count, keys = 0, []
        for part_count, part_keys in accumulators:
            count, keys = count + part_count, sorted(keys + part_keys)[:WARN_FIRST_KEYS]
        return count, keys

    def extract_output(self, accumulator):
        return accumulator


class _IndexHolder:  # Shared needs a weak-referenceable object
    def __init__(self, index: Optional[EvalIndex], details: Optional[Dict[str, EvalDetail]] = None):
        self.index = index
        self.details = details or {}


def build_eval_index(eval_records: Iterable, centroids: np.ndarray, config: DedupConfig):
    records = list(eval_records)
    if not records:
        return None
    keys, views, vectors, phashes = zip(*records)
    logging.info("dedup: building the eval index of %d images/views, %d clusters", len(keys),
                 centroids.shape[0])
    return EvalIndex(keys, np.stack(vectors), centroids, config.top_clusters_per_image,
                     config.clusters_per_bucket, phashes, views)


class SearchEvalIndexFn(beam.DoFn):
    """Batches of (key, PredictionResult) -> (key, best match) for the near-duplicates."""

    def __init__(self, config: DedupConfig, index_tag: str):
        self._config = config
        self._tag = index_tag
        self._shared = shared.Shared()
        self._holder = None
        counter = lambda name: beam.metrics.Metrics.counter(METRICS_NAMESPACE, name)  # noqa: E731
        self._searched = counter("training_images_searched")
        self._computations = counter("similarity_computations")
        self._embedding_matches = counter("embedding_matches")
        self._phash_matches = counter("phash_matches")
        self._aligned_checks = counter("aligned_checks")  # training images re-scored
        self._aligned_matches = counter("aligned_matches")

    def process(self, batch, eval_records, centroids, eval_details=()):
        if self._holder is None:  # once per worker process, shared by its threads
            self._holder = self._shared.acquire(
                lambda: _IndexHolder(build_eval_index(eval_records, centroids, self._config),
                                     dict(eval_details)),
                tag=self._tag)
        index = self._holder.index
        self._searched.inc(len(batch))
        if index is None or not batch:
            return
        config = self._config
        keys = [key for key, _ in batch]
        vectors = np.stack([vector_of(p) for _, p in batch])
        bits = config.phash_max_distance_bits
        phashes = [phash_of(p) for _, p in batch] if bits >= 0 else None
        result = index.search(vectors, config.search_threshold, phashes, bits,
                              config.verify_max_candidates if config.verifies else None)
        self._computations.inc(result.similarity_computations)
        if not config.verifies:
            for match in result.matches:
                counter = self._phash_matches if match.method == "phash" else self._embedding_matches
                counter.inc()
                yield keys[match.query_row], {"eval_key": match.eval_key, "cosine": match.cosine,
                                              "method": match.method}
            return
        per_query: Dict[int, list] = {}
        for match in result.matches:
            per_query.setdefault(match.query_row, []).append(match)
        for query_row, matches in sorted(per_query.items()):
            hashed = [m for m in matches if m.method == "phash"]
            if hashed:  # the first pass decides alone
                self._phash_matches.inc()
                best = max(hashed, key=lambda m: m.cosine)
                yield keys[query_row], {"eval_key": best.eval_key, "cosine": best.cosine,
                                        "method": "phash"}
                continue
            candidates = [(m.eval_key, m.view, m.cosine) for m in matches]
            self._aligned_checks.inc()
            verified = verify_candidates(batch[query_row][1].example, candidates,
                                         self._holder.details, config)
            if verified is not None and verified[1] > config.cosine_threshold:
                self._aligned_matches.inc()
                yield keys[query_row], {"eval_key": verified[0], "cosine": verified[1],
                                        "method": "aligned"}


def log_kmeans_iteration(report: dict) -> dict:
    """Logs one pass of the in-pipeline fit over all training images (a worker log line on
    Dataflow): how well the clusters fit, and how many are empty."""
    logging.warning("dedup: k-means pass %d over all training images: %d vectors, mean cosine to "
                    "the nearest centroid %s, %d empty clusters", report["iteration"],
                    report["vectors"], report["objective"], report["empty_clusters"])
    return report


def _fit_on_sample(sample: List[np.ndarray], config: DedupConfig):
    if not sample:
        return None
    return fit_centroids(np.stack(sample), config.num_clusters, config.kmeans_iterations)


class FindNearDuplicatesOfEval(beam.PTransform):
    """PCollection[(key, image_bytes)] -> PCollection[(key, {"eval_key", "cosine", "method"})].

    After it is applied, `self.eval_errors` is the PCollection of the unreadable eval images:
    dicts {"eval_key": str, "file": str, "error": str (dedup.eval_inputs.EVAL_ERRORS), "detail": str}.
    """

    def __init__(self, eval_image_globs: Sequence[str], dedup_config: DedupConfig,
                 centroids: Optional[np.ndarray] = None, label: Optional[str] = None):
        super().__init__(label)
        self.config = dataclasses.replace(dedup_config, eval_image_globs=tuple(eval_image_globs))
        # Fail at construction, before any worker starts: missing/unknown eval inputs, centroids.
        self.sources: List[EvalSource] = expand_eval_sources(self.config.eval_image_globs)
        if centroids is None and self.config.centroids_path:
            centroids = load_centroids(self.config.centroids_path)
        self.centroids = centroids
        self.eval_errors: Optional[beam.PCollection] = None  # set by expand()
        # With kmeans_fit "all" and no centroids given: one report dict per Lloyd pass over all
        # training images (dedup.kmeans_beam.update_centroids); set by expand().
        self.kmeans_history: Optional[beam.PCollection] = None

    def expand(self, candidates):
        config = self.config
        pipeline = candidates.pipeline
        handler = KeyedModelHandler(make_model_handler(
            config, with_phash=config.phash_max_distance_bits >= 0))
        read = (pipeline
                | "CreateEvalSources" >> beam.Create(self.sources)
                | "ReadEvalImages" >> beam.ParDo(ReadEvalSourceFn()).with_outputs(
                    EVAL_ERRORS, main="images"))
        self.eval_errors = read[EVAL_ERRORS]
        _ = (self.eval_errors
             | "SummarizeEvalErrors" >> beam.CombineGlobally(SummarizeEvalErrorsFn())
             | "WarnUnreadableEvalImages" >> beam.MapTuple(warn_unreadable_eval_images))
        eval_records = (
            read["images"]
            | "MakeEvalViews" >> beam.FlatMap(eval_views, config)
            | "SpreadEvalImages" >> beam.Reshuffle()
            | "EmbedEvalImages" >> RunInference(handler)
            | "ToEvalRecords" >> beam.Map(to_eval_record, config.phash_max_distance_bits >= 0))
        embedded = candidates | "EmbedTrainingImages" >> RunInference(handler)
        if self.centroids is not None:
            centroids = pipeline | "CreateCentroids" >> beam.Create([self.centroids])
        elif config.kmeans_fit == "all":  # paper: "based on all training images"
            fit = FitCentroidsOnAll(config.num_clusters, iterations=config.kmeans_all_iterations,
                                    init_sample_size=config.kmeans_sample_size,
                                    init_iterations=config.kmeans_iterations)
            vectors = embedded | "TrainingVectors" >> beam.Map(lambda kv: vector_of(kv[1]))
            centroids = vectors | "FitKMeansOnAll" >> fit
            self.kmeans_history = fit.history
            _ = fit.history | "LogKMeansIterations" >> beam.Map(log_kmeans_iteration)
        else:  # fit on a sample of the training side (at scale: precompute with fit-centroids)
            centroids = (
                embedded
                | "TrainingVectors" >> beam.Map(lambda kv: vector_of(kv[1]))
                | "SampleForKMeans" >> beam.combiners.Sample.FixedSizeGlobally(config.kmeans_sample_size)
                | "FitKMeans" >> beam.Map(_fit_on_sample, config))
        side_inputs = {"eval_records": beam.pvalue.AsIter(eval_records),
                       "centroids": beam.pvalue.AsSingleton(centroids)}
        if config.verifies:  # the eval images' details for the aligned check (~27 kB each)
            side_inputs["eval_details"] = beam.pvalue.AsIter(
                read["images"] | "EvalDetails" >> beam.FlatMap(to_eval_detail, config))
        return (
            embedded
            | "BatchTrainingImages" >> beam.BatchElements(min_batch_size=1,
                                                          max_batch_size=4 * config.batch_size)
            | "SearchEvalBuckets" >> beam.ParDo(
                SearchEvalIndexFn(config, f"align-dedup-index-{uuid.uuid4()}"), **side_inputs))


def to_drop_flag(item) -> Tuple[str, str]:
    """(key, match) -> (key, "near_duplicate_of_eval"): the flag CuratePairs(extra_flags=...) joins."""
    return item[0], NEAR_DUPLICATE_OF_EVAL


def near_duplicate_record(key: str, match: dict) -> dict:
    """One line of near_duplicates.jsonl: training key, eval key, cosine (and how it was found)."""
    return {"key": key, "eval_key": match["eval_key"], "cosine": round(float(match["cosine"]), 6),
            "method": match["method"]}
