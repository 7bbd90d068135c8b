"""`FindNearDuplicatesOfEval`: the Beam stage of ALIGN Appendix A for `align-curate`.

    matches = candidates | FindNearDuplicatesOfEval(eval_image_globs, dedup_config)
    # candidates: PCollection[(key, image_bytes)] of training pairs
    # matches:    PCollection[(key, {"eval_key": str, "cosine": float, "method": str})], one best
    #             (highest-cosine) match per near-duplicate training element; method is
    #             "embedding" (bucketed search) or "phash" (first pass)

Shape for 1.8B training images (docs/DEDUP.md): the eval side (10^5..10^6 images) is read,
embedded and bucketed into a side input; every worker builds the bucket index from it ONCE per
process (`beam.utils.shared.Shared`); the training side is streamed through embed -> top-10
clusters -> 120 bucket lookups -> cosines with the few eval images found, all fused in one stage:
no shuffle of the training set at all, let alone a 120x one.

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
from typing import Iterable, List, Optional, Sequence, Tuple

import apache_beam as beam
import numpy as np
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
from apache_beam.utils import shared

from dedup.config import DedupConfig
from dedup.embedders import make_model_handler
from dedup.eval_inputs import (WARN_FIRST_KEYS, EvalSource, expand_eval_sources, is_eval_error,
                               read_eval_source, warn_unreadable_eval_images)
from dedup.images import centre_crop, encode_png, phash64
from dedup.index import EvalIndex
from dedup.kmeans import fit_centroids, load_centroids
from dedup.pixel_embedder import PixelEmbedding
from schemas.image_decode import decode_rgb

FULL_VIEW = "full"
NEAR_DUPLICATE_OF_EVAL = "near_duplicate_of_eval"  # the drop reason, = pipeline.reasons's
METRICS_NAMESPACE = "dedup"
EVAL_ERRORS = "eval_errors"  # tag of the unreadable eval images (FindNearDuplicatesOfEval.eval_errors)


def eval_views(item: Tuple[str, bytes], crop_fractions: Sequence[float]):
    """((eval_key, view), bytes): the image itself plus optional centre crops (eval side only)."""
    eval_key, image_bytes = item
    yield (eval_key, FULL_VIEW), image_bytes
    if crop_fractions:
        try:  # read_eval_source checked the image decodes (JPEGs at draft size, hence the guard)
            image = decode_rgb(image_bytes, draft_side_px=None)
        except Exception:  # noqa: BLE001 - the full view is still indexed; only crops are lost
            logging.warning("dedup: eval image %r has no crop views: it does not decode at full "
                            "size", eval_key, exc_info=True)
            return
        for fraction in crop_fractions:
            yield (eval_key, f"crop{fraction:g}"), encode_png(centre_crop(image, fraction))


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
    """(eval_key, view), PredictionResult -> (eval_key, embedding, pHash of the full view)."""
    (eval_key, view), prediction = item
    phash = phash_of(prediction) if use_phash and view == FULL_VIEW else None
    return eval_key, vector_of(prediction), phash


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
    def __init__(self, index: Optional[EvalIndex]):
        self.index = index


def build_eval_index(eval_records: Iterable, centroids: np.ndarray, config: DedupConfig):
    records = list(eval_records)
    if not records:
        return None
    keys, vectors, phashes = zip(*records)
    logging.info("dedup: building the eval index of %d images/views, %d clusters", len(keys),
                 centroids.shape[0])
    return EvalIndex(keys, np.stack(vectors), centroids, config.top_clusters_per_image,
                     config.clusters_per_bucket, phashes)


class SearchEvalIndexFn(beam.DoFn):
    """Batches of (key, PredictionResult) -> (key, best match) for the near-duplicates."""

    def __init__(self, config: DedupConfig, index_tag: str):
        self._config = config
        self._tag = index_tag
        self._shared = shared.Shared()
        self._holder = None
        self._searched = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "training_images_searched")
        self._computations = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "similarity_computations")
        self._embedding_matches = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "embedding_matches")
        self._phash_matches = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "phash_matches")

    def process(self, batch, eval_records, centroids):
        if self._holder is None:  # once per worker process, shared by its threads
            self._holder = self._shared.acquire(
                lambda: _IndexHolder(build_eval_index(eval_records, centroids, self._config)),
                tag=self._tag)
        index = self._holder.index
        self._searched.inc(len(batch))
        if index is None or not batch:
            return
        keys = [key for key, _ in batch]
        vectors = np.stack([vector_of(p) for _, p in batch])
        bits = self._config.phash_max_distance_bits
        phashes = [phash_of(p) for _, p in batch] if bits >= 0 else None
        result = index.search(vectors, self._config.cosine_threshold, phashes, bits)
        self._computations.inc(result.similarity_computations)
        for match in result.matches:
            counter = self._phash_matches if match.method == "phash" else self._embedding_matches
            counter.inc()
            yield keys[match.query_row], {"eval_key": match.eval_key, "cosine": match.cosine,
                                          "method": match.method}


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
            | "MakeEvalViews" >> beam.FlatMap(eval_views, config.eval_crop_fractions)
            | "SpreadEvalImages" >> beam.Reshuffle()
            | "EmbedEvalImages" >> RunInference(handler)
            | "ToEvalRecords" >> beam.Map(to_eval_record, config.phash_max_distance_bits >= 0))
        embedded = candidates | "EmbedTrainingImages" >> RunInference(handler)
        if self.centroids is not None:
            centroids = pipeline | "CreateCentroids" >> beam.Create([self.centroids])
        else:  # fit on a sample of the training side (at scale: precompute with fit-centroids)
            centroids = (
                embedded
                | "TrainingVectors" >> beam.Map(lambda kv: vector_of(kv[1]))
                | "SampleForKMeans" >> beam.combiners.Sample.FixedSizeGlobally(config.kmeans_sample_size)
                | "FitKMeans" >> beam.Map(_fit_on_sample, config))
        return (
            embedded
            | "BatchTrainingImages" >> beam.BatchElements(min_batch_size=1,
                                                          max_batch_size=4 * config.batch_size)
            | "SearchEvalBuckets" >> beam.ParDo(
                SearchEvalIndexFn(config, f"align-dedup-index-{uuid.uuid4()}"),
                eval_records=beam.pvalue.AsIter(eval_records),
                centroids=beam.pvalue.AsSingleton(centroids)))


def to_drop_flag(item) -> Tuple[str, str]:
    """(key, match) -> (key, "near_duplicate_of_eval"): the flag CuratePairs(extra_flags=...) joins."""
    return item[0], NEAR_DUPLICATE_OF_EVAL


def near_duplicate_record(key: str, match: dict) -> dict:
    """One line of near_duplicates.jsonl: training key, eval key, cosine (and how it was found)."""
    return {"key": key, "eval_key": match["eval_key"], "cosine": round(float(match["cosine"]), 6),
            "method": match["method"]}
