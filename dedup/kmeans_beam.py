"""k-means on ALL training images in Beam (ALIGN Appendix A: "k-means ... based on all training
images"), next to the sample fit of dedup/kmeans.py.

    centroids = unit_vectors | FitCentroidsOnAll(num_clusters=4096, iterations=10)
    # unit_vectors: PCollection[float32 [D]];  centroids: PCollection of ONE float32 [K, D]
    # afterwards: .history = PCollection of one dict per iteration, .num_vectors = PCollection[int]

1. Init from a sample (Sample.FixedSizeGlobally): k-means++ seeds (greedy D^2 sampling) then
   faiss spherical k-means on the sample (dedup.kmeans.fit_centroids), i.e. today's sample fit;
   or given centroids (`initial_centroids`, e.g. a centroids.npy to refine).
2. `iterations` Lloyd iterations over ALL vectors, each one per-iteration combine: batches (made
   once) x centroids side input -> BLAS product + argmax (spherical: cosine) -> CombineGlobally of
   per-cluster sums [K, D] and counts [K] -> new centroid = normalized sum; a cluster that got no
   vector keeps its old centroid (and is counted as empty).
Beam has no loops: the iterations are unrolled, one Assign/Sum/Update stage each. Assign reads
a side input computed from the vectors, so Beam cannot fuse it with their producer: the batched
vectors are materialized once and re-read (not recomputed) by every iteration (docs/DEDUP.md).
"""
import io
import json
import logging
import random
from typing import List, Optional, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems

from dedup.kmeans import effective_num_clusters, fit_centroids, save_centroids

METRICS_NAMESPACE = "dedup_kmeans"
INITS = ("kmeans++", "random")


def kmeans_plus_plus(vectors: np.ndarray, num_clusters: int, seed: int = 1234,
                     trials: Optional[int] = None) -> np.ndarray:
    """Greedy k-means++ seeds (as scikit-learn's: 2 + ln K candidates per pick, keep the one that
    lowers the potential most) of unit vectors [N, D] -> [min(K, N), D]. On 8 well-separated
    clusters faiss's plain k-means++ init (+ 20 iterations) missed a cluster for 6 of 10 seeds, its
    random init for 9 of 10: two seeds in one cluster stay there. Cost: K x trials x N x D."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n = vectors.shape[0]
    k = min(num_clusters, n)
    trials = trials or 2 + int(np.log(max(k, 1)))
    rng = np.random.default_rng(seed)
    chosen = [int(rng.integers(n))]
    d2 = np.maximum(2.0 - 2.0 * (vectors @ vectors[chosen[0]]), 0.0)  # unit vectors: |x-c|^2
    for _ in range(1, k):
        cumulative = np.cumsum(d2, dtype=np.float64)
        if cumulative[-1] <= 0:  # fewer distinct vectors than K: duplicates, faiss splits them
            chosen.append(int(rng.integers(n)))
            continue
        candidates = np.minimum(np.searchsorted(cumulative, rng.random(trials) * cumulative[-1],
                                                side="right"), n - 1)
        candidate_d2 = np.minimum(d2, np.maximum(2.0 - 2.0 * (vectors[candidates] @ vectors.T), 0.0))
        best = int(np.argmin(candidate_d2.sum(axis=1, dtype=np.float64)))
        chosen.append(int(candidates[best]))
        d2 = candidate_d2[best]
    return vectors[chosen].copy()


def init_on_sample(sample: List[np.ndarray], num_clusters: int, init: str, iterations: int,
                   seed: int) -> np.ndarray:
    """The sample fit: k-means++ seeds (or faiss's random ones) + `iterations` faiss iterations."""
    vectors = np.stack(sample).astype(np.float32) if len(sample) else np.zeros((0, 0), np.float32)
    if vectors.shape[0] == 0:
        raise ValueError("k-means: no non-zero vector to fit on")
    # Beam hands the sample over in whatever order its bundles merged; the seeds are drawn by
    # position, so sort the rows first: the same sample gives the same centroids on every run.
    vectors = vectors[np.lexsort(vectors.T[::-1])]
    seeds = None
    if init == "kmeans++":
        seeds = kmeans_plus_plus(vectors, effective_num_clusters(num_clusters, len(vectors)), seed)
        if iterations == 0:
            return seeds
    return fit_centroids(vectors, num_clusters, max(iterations, 1), seed, init_centroids=seeds)


def assign_batch(batch: np.ndarray, centroids: np.ndarray):
    """[B, D] x [K, D] -> (K, labels [B], batch): one sgemm (B x K x D multiply-adds) + argmax."""
    labels = np.argmax(batch @ centroids.T, axis=1).astype(np.int32)
    return centroids.shape[0], labels, batch


class ClusterSumsFn(beam.CombineFn):
    """(K, labels [B], vectors [B, D]) -> (sums float32 [K, D], counts int64 [K]); None if empty.

    The accumulator is the (sums, counts) pair and merging adds; K, D come with the first batch
    (the centroids are a runtime value). float32 sums halve the partial accumulators that cross the
    shuffle (one per bundle, K x D x 4 bytes: 16 MB at 4096 x 1024); summing 1e9 unit vectors this
    way moves a centroid's direction by ~1e-6, irrelevant for bucketing."""

    def create_accumulator(self):
        return None

    def add_input(self, accumulator, element):
        k, labels, vectors = element
        if accumulator is None:
            accumulator = (np.zeros((k, vectors.shape[1]), np.float32), np.zeros(k, np.int64))
        sums, counts = accumulator
        if sums.shape != (k, vectors.shape[1]):
            raise ValueError(f"k-means: batch of {k} clusters x {vectors.shape[1]} dims into "
                             f"sums of shape {sums.shape}")
        order = np.argsort(labels, kind="stable")  # group rows by cluster, then one reduceat
        ordered = labels[order]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        sums[ordered[starts]] += np.add.reduceat(vectors[order], starts, axis=0)
        counts += np.bincount(labels, minlength=k)
        return accumulator

    def merge_accumulators(self, accumulators):
        merged = None
        for i, accumulator in enumerate(accumulators):
            if accumulator is None:
                continue
            if merged is None:  # Beam lets us modify only the first accumulator: copy the others
                merged = accumulator if i == 0 else (accumulator[0].copy(), accumulator[1].copy())
            else:
                np.add(merged[0], accumulator[0], out=merged[0])
                np.add(merged[1], accumulator[1], out=merged[1])
        return merged

    def extract_output(self, accumulator):
        return accumulator


class _AssignToShardFn(beam.DoFn):
    """assign_batch keyed by ONE random shard per bundle (as Beam's hot-key fanout does): each
    bundle still sends one partial, and merging the partials spreads over the shards."""

    def __init__(self, shards: int):
        self._shards = shards

    def start_bundle(self):
        self._key = random.randrange(self._shards)

    def process(self, batch, centroids):
        yield self._key, assign_batch(batch, centroids)


class _MergeSumsFn(ClusterSumsFn):
    """ClusterSumsFn over (sums, counts) partials instead of batches."""

    def add_input(self, accumulator, partial):
        return self.merge_accumulators([accumulator, partial])


def update_centroids(stats, centroids: np.ndarray, iteration: int):
    """(sums, counts) of iteration t, centroids of t -> (centroids of t+1, report dict).

    objective = mean cosine of each vector to its assigned (= nearest) centroid of iteration t,
    computed from the sums (sum_k c_k . S_k / N), as faiss's per-iteration objective / N;
    objective_updated_lower_bound = sum_k |S_k| / N, the same assignment scored against the new
    centroids: the next objective is at least this (Lloyd never gets worse)."""
    if stats is None:  # no vectors at all
        return centroids, {"iteration": iteration, "vectors": 0, "objective": None,
                           "objective_updated_lower_bound": None,
                           "empty_clusters": int(centroids.shape[0])}
    sums, counts = stats
    norms = np.linalg.norm(sums.astype(np.float64), axis=1)
    total = int(counts.sum())
    keep = (counts == 0) | (norms <= 0)  # empty (or cancelling) clusters keep their centroid
    updated = np.where(keep[:, None], centroids,
                       sums / np.maximum(norms, 1e-30)[:, None]).astype(np.float32)
    report = {"iteration": iteration, "vectors": total,
              "objective": float(np.einsum("kd,kd->", centroids.astype(np.float64), sums) / total),
              "objective_updated_lower_bound": float(norms.sum() / total),
              "empty_clusters": int((counts == 0).sum())}
    logging.info("k-means iteration %d: %d vectors, mean cosine to the nearest centroid %.6f, "
                 "%d empty clusters", iteration, total, report["objective"], report["empty_clusters"])
    return updated, report


class _KeepNonZeroFn(beam.DoFn):
    """Zero vectors (undecodable images with the pixel embedder) have no direction: counted, left
    out, as fit_centroids does."""

    def __init__(self):
        self._dropped = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "zero_vectors_dropped")

    def process(self, vector):
        vector = np.asarray(vector, dtype=np.float32)
        if np.any(vector):
            yield vector
        else:
            self._dropped.inc()


class FitCentroidsOnAll(beam.PTransform):
    """PCollection[float32 [D] unit vectors] -> PCollection of one float32 [K', D] (K' <= K).

    After it is applied: `history`, one dict per iteration (see update_centroids), and
    `num_vectors`, the count of the non-zero vectors. `fanout`: merge the per-bundle [K, D]
    partials under that many keys first, then the `fanout` results (not CombineGlobally.with_fanout:
    on the FnApiRunner that failed, "watermark-pending bundles did not execute", once iterations
    chain behind a sampled init)."""

    def __init__(self, num_clusters: int, iterations: int = 10, init_sample_size: int = 100_000,
                 seed: int = 1234, init: str = "kmeans++", init_iterations: int = 20,
                 initial_centroids: Optional[np.ndarray] = None, batch_size: int = 1024,
                 fanout: Optional[int] = None, label: Optional[str] = None):
        super().__init__(label)
        if init not in INITS or iterations < 0 or num_clusters < 1 or batch_size < 1:
            raise ValueError(f"need init in {INITS}, iterations >= 0, num_clusters >= 1, "
                             f"batch_size >= 1; got {init!r}, {iterations}, {num_clusters}, {batch_size}")
        self.num_clusters, self.iterations, self.seed = num_clusters, iterations, seed
        self.init_sample_size, self.init, self.init_iterations = init_sample_size, init, init_iterations
        self.initial_centroids = (None if initial_centroids is None
                                  else np.asarray(initial_centroids, dtype=np.float32))
        self.batch_size, self.fanout = batch_size, fanout
        self.history: Optional[beam.PCollection] = None
        self.num_vectors: Optional[beam.PCollection] = None

    def expand(self, vectors):
        pipeline = vectors.pipeline
        vectors = vectors | "KeepNonZero" >> beam.ParDo(_KeepNonZeroFn())
        self.num_vectors = vectors | "CountVectors" >> beam.combiners.Count.Globally()
        # Batched once: this PCollection is what every iteration re-reads (stacked arrays are
        # cheap to encode; one list of 1024 small arrays is not).
        batches = (vectors
                   | "Batch" >> beam.BatchElements(min_batch_size=self.batch_size,
                                                   max_batch_size=self.batch_size)
                   | "Stack" >> beam.Map(lambda rows: np.stack(rows)))
        if self.initial_centroids is not None:
            centroids = pipeline | "InitialCentroids" >> beam.Create([self.initial_centroids])
        else:
            sample = beam.combiners.Sample.FixedSizeGlobally(self.init_sample_size)
            centroids = (vectors
                         | "SampleForInit" >> sample
                         | "FitOnSample" >> beam.Map(init_on_sample, self.num_clusters, self.init,
                                                     self.init_iterations, self.seed))
        reports = []
        for t in range(self.iterations):  # unrolled: one stage per iteration
            current = beam.pvalue.AsSingleton(centroids)
            if self.fanout:
                sums = (batches
                        | f"Assign{t}" >> beam.ParDo(_AssignToShardFn(self.fanout), current)
                        | f"SumPerShard{t}" >> beam.CombinePerKey(ClusterSumsFn())
                        | f"DropShard{t}" >> beam.Values()
                        | f"SumPerCluster{t}" >> beam.CombineGlobally(_MergeSumsFn()))
            else:
                sums = (batches
                        | f"Assign{t}" >> beam.Map(assign_batch, current)
                        | f"SumPerCluster{t}" >> beam.CombineGlobally(ClusterSumsFn()))
            updated = sums | f"Update{t}" >> beam.Map(update_centroids, current, t)
            centroids = updated | f"Centroids{t + 1}" >> beam.Map(lambda pair: pair[0])
            reports.append(updated | f"Report{t}" >> beam.Map(lambda pair: pair[1]))
        self.history = (tuple(reports) | "History" >> beam.Flatten() if reports
                        else pipeline | "NoHistory" >> beam.Create([]))
        return centroids


# --- `align-dedup fit-centroids --fit all`: read + embed every image, fit, write the artifact ----

class _ReadImagesFn(beam.DoFn):
    """EvalSource -> its good (key, bytes); unreadable images/files are counted, not used."""

    def __init__(self):
        self._unreadable = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "images_unreadable")

    def process(self, source):
        from dedup.eval_inputs import is_eval_error, read_eval_source

        for item in read_eval_source(source):  # decodes each image once, as the sample fit does
            if is_eval_error(item):
                self._unreadable.inc()
                yield beam.pvalue.TaggedOutput("errors", 1)
            else:
                yield item


def _write_artifact(centroids, history, num_vectors, num_images, unreadable, output, metadata):
    history = sorted(history, key=lambda report: report["iteration"])
    save_centroids(output, centroids, dict(
        metadata, vectors=int(num_vectors), images_embedded=int(num_images),
        zero_vectors_dropped=int(num_images) - int(num_vectors), images_unreadable=int(unreadable),
        objective_per_iteration=[report["objective"] for report in history], history=history))


def fit_on_all_images(image_globs: Sequence[str], config, output: str, iterations: int,
                      seed: int, options=None, init: str = "kmeans++") -> dict:
    """Runs the whole-corpus fit (embedding every image with the configured embedder through
    RunInference, as FindNearDuplicatesOfEval does) and writes OUTPUT (.npy) + OUTPUT.json;
    returns the .json's content. `options`: PipelineOptions (default: the local DirectRunner)."""
    from apache_beam.ml.inference.base import RunInference
    from dedup.embedders import make_model_handler
    from dedup.eval_inputs import expand_eval_sources

    sources = expand_eval_sources(image_globs)  # configuration errors fail here, before a worker
    fit = FitCentroidsOnAll(config.num_clusters, iterations, config.kmeans_sample_size, seed, init,
                            config.kmeans_iterations)
    metadata = {"fit": "all", "embedder": config.embedder, "images": list(image_globs),
                "iterations": iterations, "init": f"{init} + {config.kmeans_iterations} faiss "
                "iterations on a sample", "init_sample_size": config.kmeans_sample_size, "seed": seed}
    with beam.Pipeline(options=options) as pipeline:
        read = (pipeline
                | "CreateSources" >> beam.Create(sources)
                | "SpreadFiles" >> beam.Reshuffle()  # files, not images: no image bytes shuffled
                | "ReadImages" >> beam.ParDo(_ReadImagesFn()).with_outputs("errors", main="images"))
        vectors = (read["images"]
                   | "DropKeys" >> beam.Values()
                   | "Embed" >> RunInference(make_model_handler(config))
                   | "ToVector" >> beam.Map(lambda result: np.asarray(result.inference, np.float32)))
        num_images = vectors | "CountImages" >> beam.combiners.Count.Globally()
        unreadable = read["errors"] | "CountUnreadable" >> beam.combiners.Count.Globally()
        centroids = vectors | "FitCentroidsOnAll" >> fit
        _ = centroids | "Write" >> beam.Map(
            _write_artifact, beam.pvalue.AsList(fit.history), beam.pvalue.AsSingleton(fit.num_vectors),
            beam.pvalue.AsSingleton(num_images), beam.pvalue.AsSingleton(unreadable), output, metadata)
    with FileSystems.open(output + ".json") as f:
        return json.load(io.TextIOWrapper(f, encoding="utf-8"))
