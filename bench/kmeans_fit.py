"""Cost of k-means on ALL training vectors in Beam (dedup/kmeans_beam.py) vs the sample fit.

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 nice .venv/bin/python bench/kmeans_fit.py \\
        [--vectors 200000] [--dim 1024] [--clusters 4096,256] [--sample 100000]

Synthetic "pixel-embedder-like" unit vectors (1024-d, around --topics random directions, cosine
~0.7 to their topic), one BLAS thread, CPU seconds of this process (the FnApiRunner runs in it).
Per K it measures:
  * the sample fit (dedup.kmeans.fit_centroids, faiss) per iteration on --sample vectors, and the
    greedy k-means++ seeding (the first --seed_picks picks, scaled to K: every pick costs the same);
  * one Lloyd iteration over all vectors in-process (the same assign/sum/update code, no Beam):
    the floor;
  * FitCentroidsOnAll on the FnApiRunner, started from the sample fit, with --beam_iterations
    a,b passes: (CPU(b) - CPU(a)) / (b - a) = one iteration with Beam's overhead, vectors made
    in-pipeline (the same in both runs, so it cancels);
and prints CPU s per iteration per million vectors, the BLAS rate, and an extrapolation to 1.8B.
"""
import argparse
import os
import pickle
import resource
import sys
import tempfile
import time

import apache_beam as beam
import faiss
import numpy as np
from apache_beam.runners.portability.fn_api_runner import FnApiRunner

from dedup.kmeans import fit_centroids
from dedup.kmeans_beam import (ClusterSumsFn, FitCentroidsOnAll, assign_batch, kmeans_plus_plus,
                               update_centroids)

PAPER_IMAGES = 1.8e9


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def make_batch(index: int, rows: int, dim: int, topics: int, seed: int) -> np.ndarray:
    """Rows of batch `index`: deterministic, so the in-process and Beam runs see the same data."""
    centres = np.random.default_rng(seed).normal(size=(topics, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    rng = np.random.default_rng([seed, index])
    noise = rng.normal(0, 1 / np.sqrt(dim), (rows, dim)).astype(np.float32)
    x = centres[rng.integers(0, topics, rows)] + noise
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def batch_of(args, index: int) -> np.ndarray:
    rows = min(args.gen_batch, args.vectors - index * args.gen_batch)
    return make_batch(index, rows, args.dim, args.topics, args.seed)


def lloyd_in_process(x: np.ndarray, centroids: np.ndarray, batch: int):
    fn = ClusterSumsFn()
    accumulator = fn.create_accumulator()
    for start in range(0, len(x), batch):
        accumulator = fn.add_input(accumulator, assign_batch(x[start:start + batch], centroids))
    return update_centroids(fn.extract_output(accumulator), centroids, 0)


def beam_fit(args, centroids: np.ndarray, iterations: int):
    """(CPU s, wall s, history) of FitCentroidsOnAll with `iterations` passes."""
    batches = -(-args.vectors // args.gen_batch)
    out = os.path.join(tempfile.mkdtemp(), "history.pkl")
    start_cpu, start_wall = cpu_seconds(), time.perf_counter()
    with beam.Pipeline(runner=FnApiRunner()) as p:
        fit = FitCentroidsOnAll(centroids.shape[0], iterations, initial_centroids=centroids,
                                batch_size=args.batch)
        _ = (p | beam.Create(range(batches))
             | "Make" >> beam.FlatMap(lambda i: list(batch_of(args, i)))
             | fit)
        _ = fit.history | beam.combiners.ToList() | beam.Map(_dump, out)
    cpu, wall = cpu_seconds() - start_cpu, time.perf_counter() - start_wall
    with open(out, "rb") as f:
        return cpu, wall, sorted(pickle.load(f), key=lambda r: r["iteration"])


def _dump(value, path):  # the runner pickles its functions: results go through a file
    with open(path, "wb") as f:
        pickle.dump(value, f)


def measure(args, k: int) -> dict:
    x = np.concatenate([batch_of(args, i) for i in range(-(-args.vectors // args.gen_batch))])
    sample = x[:min(args.sample, len(x))]  # the rows are in random order already
    row = {"k": k, "macs_per_vector": k * args.dim}
    t = cpu_seconds()
    centroids = fit_centroids(sample, k, args.sample_iterations, args.seed)
    row["sample_fit_s_per_iteration"] = (cpu_seconds() - t) / args.sample_iterations
    picks = min(args.seed_picks, k)
    t = cpu_seconds()
    kmeans_plus_plus(sample, picks, args.seed, trials=2 + int(np.log(k)))
    row["seeding_s"] = (cpu_seconds() - t) * k / picks
    t = cpu_seconds()
    lloyd_in_process(x, centroids, args.batch)
    row["floor_s_per_iteration"] = cpu_seconds() - t
    del x, sample
    a, b = args.beam_iterations
    cpu_a, wall_a, _ = beam_fit(args, centroids, a)
    cpu_b, wall_b, history = beam_fit(args, centroids, b)
    row["beam_s_per_iteration"] = (cpu_b - cpu_a) / (b - a)
    row["beam_wall_s_per_iteration"] = (wall_b - wall_a) / (b - a)
    row["objectives"] = [round(r["objective"], 5) for r in history]
    row["empty_clusters"] = [r["empty_clusters"] for r in history]
    print(f"K={k}: {row}", file=sys.stderr, flush=True)
    return row


def report(args, rows) -> None:
    per_million = 1e6 / args.vectors
    print(f"\n{args.vectors} vectors x {args.dim} dims, batches of {args.batch}, sample fit on "
          f"{min(args.sample, args.vectors)}; CPU s (one BLAS thread); per 1M = scaled linearly\n")
    print("| K | multiply-adds per vector (K x D) | sample fit, faiss, per iteration | k-means++ seeding "
          "of the sample | one iteration over all, in-process: per 1M vectors (GFLOP/s) | one iteration "
          "over all, Beam FnApiRunner: per 1M vectors (wall per 1M) | Beam overhead |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        floor, beam_s = r["floor_s_per_iteration"] * per_million, r["beam_s_per_iteration"] * per_million
        gflops = 2 * r["macs_per_vector"] * args.vectors / r["floor_s_per_iteration"] / 1e9
        print(f"| {r['k']} | {r['macs_per_vector'] / 1e6:.2f} M | {r['sample_fit_s_per_iteration']:.1f} s "
              f"| {r['seeding_s']:.1f} s | {floor:.1f} s ({gflops:.0f}) | **{beam_s:.1f} s** "
              f"({r['beam_wall_s_per_iteration'] * per_million:.1f} s) | {beam_s / floor - 1:+.0%} |")
    print("\nObjective (mean cosine to the nearest centroid) per Beam iteration, from the sample fit:")
    for r in rows:
        print(f"  K={r['k']}: {r['objectives']} (empty clusters {r['empty_clusters']})")
    print(f"\nExtrapolation to {PAPER_IMAGES:.1e} images, {args.all_iterations} iterations, "
          f"{args.workers} workers x {args.vcpus} vCPUs at this machine's per-core speed, linear "
          f"scaling, embeddings ({args.dim}-d float32) already computed and materialized:")
    for r in rows:
        cpu = r["beam_s_per_iteration"] * per_million * PAPER_IMAGES / 1e6
        read_tb = PAPER_IMAGES * args.dim * 4 / 1e12
        print(f"  K={r['k']}: {cpu / 3600:,.0f} core-hours per iteration, "
              f"{cpu * args.all_iterations / 3600:,.0f} for {args.all_iterations}; wall "
              f"{cpu / (args.workers * args.vcpus) / 60:.1f} min per iteration of CPU, plus reading "
              f"{read_tb:.1f} TB of embeddings ({read_tb * 1e6 / args.workers:,.0f} MB per worker) per "
              f"iteration. Sample fit: {r['sample_fit_s_per_iteration'] * 20 / 3600:.2f} core-hours "
              f"(20 faiss iterations on {min(args.sample, args.vectors)} vectors) + seeding "
              f"{r['seeding_s'] / 3600:.2f}, whatever the corpus size.")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--vectors", type=int, default=200_000)
    p.add_argument("--dim", type=int, default=1024)
    p.add_argument("--clusters", default="4096,256")
    p.add_argument("--topics", type=int, default=2048)
    p.add_argument("--sample", type=int, default=100_000)
    p.add_argument("--sample_iterations", type=int, default=3)
    p.add_argument("--seed_picks", type=int, default=64)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--gen_batch", type=int, default=4096)
    p.add_argument("--beam_iterations", default="1,3")
    p.add_argument("--all_iterations", type=int, default=10)
    p.add_argument("--workers", type=int, default=100)
    p.add_argument("--vcpus", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    args.beam_iterations = [int(v) for v in args.beam_iterations.split(",")]
    faiss.omp_set_num_threads(1)
    rows = [measure(args, int(k)) for k in args.clusters.split(",")]
    report(args, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
