"""Bucketed near-duplicate search (ALIGN Appendix A) vs exact brute force vs one cluster per image.

On the same embeddings, for pairs (training, eval) with cosine > threshold:
  * brute force: faiss IndexFlatIP range search, every pair compared (the exact answer);
  * bucketed: top-T clusters per image, all C(T, B) cluster combinations as buckets (paper T=10,
    B=3), compared only within shared buckets (dedup/index.py, the code the pipeline runs);
  * one cluster per image (SemDeDup / NeMo Curator style): top-1 cluster, compared within it
    (the same code with T=1, B=1).
Reported: recall of the brute-force pairs and of the training images that have one, similarity
computations, wall time. Two data sets:
  * real: pixel-embedder embeddings of /work/real_corpus (built by ../shared/corpus/build_real_corpus.py),
    a random 20% of the images as the eval side, the rest as training; the emoji skin-tone variants
    (near_duplicate_of_code) are real near-duplicate ground truth;
  * synthetic: 1M training x 100k eval unit vectors (dim 64, 2,000 topic centres) with 10,000
    planted near-duplicates (cosine ~0.98-0.995 to an eval vector).

Usage (late, once, on the shared 2 cores):
  nice .venv/bin/python bench/dedup_recall.py --real_corpus /work/real_corpus
The whole Beam stage's CPU per image, with any --dedup_* settings (run at 3000 and 300 for the
marginal cost), e.g. a trained embedder:
  nice .venv/bin/python bench/dedup_recall.py --real_corpus /work/corpus --skip_real --skip_synthetic \
      --skip_embed_cost --stage_train_images 3000 [--dedup_embedder DIR --dedup_phash_max_distance_bits -1]
"""
import argparse
import glob
import io
import json
import os
import sys
import tarfile
import time

import faiss
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from dedup.config import DedupConfig, add_dedup_flags  # noqa: E402
from dedup.index import EvalIndex  # noqa: E402
from dedup.kmeans import fit_centroids  # noqa: E402
from dedup.pixel_embedder import PixelEmbedder  # noqa: E402


def brute_force(train, evals, threshold, batch=20000):
    index = faiss.IndexFlatIP(evals.shape[1])
    index.add(evals)
    pairs = []
    start, cpu = time.time(), time.process_time()
    for lo in range(0, len(train), batch):
        lims, dist, labels = index.range_search(train[lo:lo + batch], threshold)
        rows = np.repeat(np.arange(len(lims) - 1), np.diff(lims).astype(np.int64)) + lo
        keep = dist > threshold
        pairs.append(np.stack([rows[keep], labels[keep]], axis=1))
    pairs = np.concatenate(pairs) if pairs else np.zeros((0, 2), np.int64)
    return pairs, len(train) * len(evals), time.time() - start, time.process_time() - cpu


def bucketed(train, evals, centroids, threshold, top, per_bucket, batch=5000):
    start, cpu = time.time(), time.process_time()
    index = EvalIndex([str(i) for i in range(len(evals))], evals, centroids, top, per_bucket)
    # rows of the index are eval ids sorted by key string: map back to the original eval ids
    row_to_eval = np.array([int(index.key_names[k]) for k in index.row_key])
    build_s = time.time() - start
    found, computations = [], 0
    for lo in range(0, len(train), batch):
        pairs, _, n = index.pairs_above(train[lo:lo + batch], threshold)
        computations += n
        found.append(np.stack([pairs[:, 0] + lo, row_to_eval[pairs[:, 1]]], axis=1))
    return np.concatenate(found), computations, build_s, time.time() - start, time.process_time() - cpu


def recall(truth, found):
    as_set = lambda p: set(map(tuple, p.tolist()))  # noqa: E731
    t, f = as_set(truth), as_set(found)
    queries_t, queries_f = {q for q, _ in t}, {q for q, _ in f}
    return (len(t & f) / len(t) if t else 1.0,
            len(queries_t & queries_f) / len(queries_t) if queries_t else 1.0)


def compare(name, train, evals, threshold, num_clusters, sample_size, out):
    print(f"\n== {name}: {len(train):,} training x {len(evals):,} eval, dim {train.shape[1]}, "
          f"K={num_clusters}, threshold {threshold}", flush=True)
    rng = np.random.default_rng(0)
    t0 = time.time()
    sample = train[rng.choice(len(train), min(sample_size, len(train)), replace=False)]
    centroids = fit_centroids(sample, num_clusters, iterations=20)
    kmeans_s = time.time() - t0
    truth, brute_n, brute_s, brute_cpu = brute_force(train, evals, threshold)
    print(f"k-means on {len(sample):,}: {kmeans_s:.1f} s; brute force: {len(truth):,} pairs "
          f"({len(np.unique(truth[:, 0])):,} training images), {brute_n:.3g} computations, "
          f"{brute_s:.1f} s ({brute_cpu:.1f} CPU s)", flush=True)
    rows = [{"method": "brute force (faiss IndexFlatIP)", "pair_recall": 1.0, "image_recall": 1.0,
             "similarity_computations": brute_n, "seconds": brute_s, "cpu_seconds": brute_cpu,
             "reduction": 1.0}]
    for label, top, per_bucket in [("bucketed, top-10 clusters, C(10,3)=120 buckets (paper)", 10, 3),
                                   ("one cluster per image (SemDeDup / NeMo Curator)", 1, 1)]:
        found, n, build_s, total_s, cpu_s = bucketed(train, evals, centroids, threshold, top, per_bucket)
        pair_recall, image_recall = recall(truth, found)
        rows.append({"method": label, "pair_recall": pair_recall, "image_recall": image_recall,
                     "similarity_computations": n, "seconds": total_s, "cpu_seconds": cpu_s,
                     "index_build_seconds": build_s,
                     "reduction": brute_n / max(n, 1)})
    print("| method | recall of brute-force pairs | recall of training images | similarity "
          "computations | fewer than brute force | wall s | CPU s |\n|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['pair_recall']:.4f} | {r['image_recall']:.4f} | "
              f"{r['similarity_computations']:.3g} | {r['reduction']:.0f}x | {r['seconds']:.1f} | "
              f"{r['cpu_seconds']:.1f} |")
    out[name] = {"train": len(train), "eval": len(evals), "dim": int(train.shape[1]),
                 "num_clusters": int(centroids.shape[0]), "kmeans_seconds": kmeans_s,
                 "brute_force_pairs": int(len(truth)), "rows": rows}
    return truth, centroids


def real_embeddings(corpus, cache):
    if cache and os.path.exists(cache):
        data = np.load(cache, allow_pickle=True)
        return data["keys"].tolist(), data["vectors"], data["meta"].item(), 0.0
    meta = {}
    for shard in sorted(glob.glob(os.path.join(corpus, "webdataset", "*.tar"))):
        with tarfile.open(shard) as tar:
            for member in tar:
                if member.name.endswith(".json"):
                    record = json.load(tar.extractfile(member))
                    meta[record["key"]] = record
    keys, vectors, embedder = sorted(meta), [], PixelEmbedder()
    start = time.time()
    for key in keys:
        with open(os.path.join(corpus, meta[key]["url"]), "rb") as f:
            vectors.append(embedder.embed_bytes(f.read()))
    seconds = time.time() - start
    vectors = np.stack(vectors)
    if cache:
        np.savez(cache, keys=np.array(keys), vectors=vectors, meta=np.array(meta, dtype=object))
    return keys, vectors, meta, seconds


def run_real(args, out):
    keys, vectors, meta, embed_s = real_embeddings(args.real_corpus, args.cache)
    zero = np.linalg.norm(vectors, axis=1) == 0
    if embed_s:
        print(f"pixel embedder: {len(keys):,} real images in {embed_s:.1f} s "
              f"({embed_s / len(keys) * 1e3:.1f} ms/image, {zero.sum()} undecodable/flat -> zero)")
    out["real_embed_ms_per_image"] = embed_s / len(keys) * 1e3 if embed_s else None
    rng = np.random.default_rng(1)
    is_eval = rng.random(len(keys)) < 0.2
    train_idx, eval_idx = np.flatnonzero(~is_eval & ~zero), np.flatnonzero(is_eval & ~zero)
    truth, centroids = compare("real corpus (pixel embedder)", vectors[train_idx], vectors[eval_idx],
                               args.threshold, args.real_clusters, len(train_idx), out)
    # Real ground truth: emoji skin-tone variant (training) of a base emoji (eval), or the reverse.
    code_to_row = {meta[k].get("code"): i for i, k in enumerate(keys) if meta[k].get("code")}
    position = {int(r): p for p, r in enumerate(train_idx)}, {int(r): p for p, r in enumerate(eval_idx)}
    variant_pairs = []
    for i, k in enumerate(keys):
        base = code_to_row.get(meta[k].get("near_duplicate_of_code"))
        for a, b in ((i, base), (base, i)) if base is not None else ():
            if a in position[0] and b in position[1]:
                variant_pairs.append((position[0][a], position[1][b]))
    variant_pairs = np.array(variant_pairs).reshape(-1, 2)
    cos = np.sum(vectors[train_idx][variant_pairs[:, 0]] * vectors[eval_idx][variant_pairs[:, 1]], 1)
    index = EvalIndex([str(i) for i in range(len(eval_idx))], vectors[eval_idx], centroids, 10, 3)
    candidates = set(map(tuple, index.candidate_pairs(vectors[train_idx]).tolist()))
    rows = [int(index.key_names[k]) for k in index.row_key]
    shared = np.mean([(q, rows.index(e)) in candidates for q, e in variant_pairs.tolist()])
    for t in (0.9, 0.95, args.threshold):
        print(f"skin-tone variants across the split: {len(variant_pairs)} pairs; cosine > {t}: "
              f"{np.mean(cos > t):.3f}")
    print(f"skin-tone variant pairs sharing a bucket (found whenever above the threshold): {shared:.3f}")
    out["real_skin_tone_pairs"] = {"pairs": int(len(variant_pairs)),
                                   "above_threshold": float(np.mean(cos > args.threshold)),
                                   "above_0.95": float(np.mean(cos > 0.95)),
                                   "above_0.9": float(np.mean(cos > 0.9)),
                                   "share_a_bucket": float(shared)}


def embed_cost(corpus, count=1000):
    """CPU ms per training image of the stage's per-image work: pixel embedding and pHash, on real
    images re-encoded as the curation pipeline stores them (JPEG, shorter side 346 px)."""
    from dedup.beam_stage import safe_phash  # pHash with its own decode

    jpegs = [data for _, data in stored_jpegs(corpus, count, seed=2)]
    shorter_side_px = 346
    embedder = PixelEmbedder()
    start = time.process_time()
    for data in jpegs:
        embedder.embed_bytes(data)
    embed_ms = (time.process_time() - start) / len(jpegs) * 1e3
    start = time.process_time()
    for data in jpegs:
        safe_phash(data)
    phash_ms = (time.process_time() - start) / len(jpegs) * 1e3
    start = time.process_time()
    for data in jpegs:
        embedder.embed_with_phash(data)
    both_ms = (time.process_time() - start) / len(jpegs) * 1e3
    print(f"per training image (JPEG, shorter side <= {shorter_side_px} px, {len(jpegs)} real images): "
          f"pixel embedding {embed_ms:.2f} CPU ms, pHash alone {phash_ms:.2f} CPU ms, both from one "
          f"decode (what the stage runs) {both_ms:.2f} CPU ms")
    return {"images": len(jpegs), "pixel_embed_cpu_ms": embed_ms, "phash_cpu_ms": phash_ms,
            "pixel_embed_and_phash_cpu_ms": both_ms}


def stored_jpegs(corpus, count, seed, shorter_side_px=346):
    """`count` real corpus images re-encoded as the pipeline stores them (JPEG, shorter side <= 346)."""
    from PIL import Image

    from schemas.image_decode import decode_rgb

    paths = sorted(glob.glob(os.path.join(corpus, "images", "*.png")))
    out = []
    for path in np.random.default_rng(seed).choice(paths, count, replace=False):
        try:
            image = decode_rgb(open(path, "rb").read(), draft_side_px=None)
        except Exception:  # noqa: BLE001 - the few oversized corpus images
            continue
        scale = shorter_side_px / min(image.size)
        if scale < 1:
            image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                                 Image.BICUBIC)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=95)
        out.append((os.path.basename(path)[:-4], buffer.getvalue()))
    return out


def stage_cost(corpus, num_train, num_eval, config):
    """The whole Beam stage (FnApiRunner, in this process) on real stored JPEGs: CPU per image.
    `config`: the stage's settings from the --dedup_* flags (any embedder), with 64 clusters."""
    import dataclasses
    import tempfile

    import apache_beam as beam
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    from dedup.beam_stage import FindNearDuplicatesOfEval
    from dedup.embedders import embed_in_process

    images = stored_jpegs(corpus, num_train + num_eval, seed=3)
    train, evals = images[:num_train], images[num_train:]
    config = dataclasses.replace(config, num_clusters=64)
    centroids = fit_centroids(embed_in_process(config, [b for _, b in train]), 64)
    with tempfile.TemporaryDirectory() as folder, tempfile.TemporaryDirectory() as train_folder:
        for key, data in evals:
            with open(os.path.join(folder, key + ".jpg"), "wb") as f:
                f.write(data)
        for key, data in train:  # read by the workers: beam.Create of the bytes would pickle them
            with open(os.path.join(train_folder, key + ".jpg"), "wb") as f:
                f.write(data)
        paths = sorted(os.path.join(train_folder, key + ".jpg") for key, _ in train)
        start, cpu = time.time(), time.process_time()
        with beam.Pipeline(runner=FnApiRunner()) as p:
            _ = (p | beam.Create(paths)
                 | beam.Map(lambda path: (os.path.basename(path), open(path, "rb").read()))
                 | FindNearDuplicatesOfEval([folder], config, centroids=centroids)
                 | beam.combiners.Count.Globally())
        wall, cpu = time.time() - start, time.process_time() - cpu
    per_image = cpu / (len(train) + len(evals)) * 1e3
    phash = "off" if config.phash_max_distance_bits < 0 else "on"
    print(f"Beam stage (FnApiRunner, embedder {config.embedder}, pHash {phash}, aligned check "
          f"{'on' if config.verifies else 'off'}, K=64): {len(train)} training + "
          f"{len(evals)} eval stored JPEGs in {wall:.1f} s wall, {cpu:.1f} CPU s = {per_image:.2f} "
          f"CPU ms per image (pipeline start-up included)")
    return {"train": len(train), "eval": len(evals), "wall_seconds": wall, "cpu_seconds": cpu,
            "cpu_ms_per_image": per_image}


def synthetic(num_train, num_eval, dim, planted, seed=0):
    """Clustered unit vectors (2,000 topics, as web images are) with planted near-duplicates."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(2000, dim)).astype(np.float32)

    def draw(n):
        x = centres[rng.integers(0, len(centres), n)] + rng.normal(scale=0.6, size=(n, dim))
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    train, evals = draw(num_train), draw(num_eval)
    rows = rng.choice(num_train, planted, replace=False)
    sources = rng.integers(0, num_eval, planted)
    noise = rng.normal(size=(planted, dim)).astype(np.float32)
    noise -= np.sum(noise * evals[sources], axis=1, keepdims=True) * evals[sources]
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    angle = np.arccos(rng.uniform(0.98, 0.995, planted)).astype(np.float32)[:, None]
    train[rows] = np.cos(angle) * evals[sources] + np.sin(angle) * noise
    return train, evals, rows, sources


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real_corpus", default="/work/real_corpus")
    parser.add_argument("--cache", default="/tmp/dedup_real_embeddings.npz")
    parser.add_argument("--real_clusters", type=int, default=256)
    parser.add_argument("--synthetic_train", type=int, default=1_000_000)
    parser.add_argument("--synthetic_eval", type=int, default=100_000)
    parser.add_argument("--synthetic_dim", type=int, default=64)
    parser.add_argument("--synthetic_clusters", type=int, default=1024)
    parser.add_argument("--planted", type=int, default=10_000)
    parser.add_argument("--kmeans_sample", type=int, default=100_000)
    parser.add_argument("--threshold", type=float, default=0.975)
    parser.add_argument("--skip_real", action="store_true")
    parser.add_argument("--skip_synthetic", action="store_true")
    parser.add_argument("--skip_embed_cost", action="store_true")
    parser.add_argument("--embed_cost_images", type=int, default=1000)
    parser.add_argument("--stage_train_images", type=int, default=0,
                        help="also run the Beam stage on this many real stored JPEGs (e.g. 3000)")
    parser.add_argument("--output_json", default=None)
    add_dedup_flags(parser)  # the stage's settings for --stage_train_images (default: the defaults)
    args = parser.parse_args()
    faiss.omp_set_num_threads(2)
    out = {}
    if not args.skip_embed_cost:
        out["embed_cost"] = embed_cost(args.real_corpus, args.embed_cost_images)
    if args.stage_train_images:
        out["stage_cost"] = stage_cost(args.real_corpus, args.stage_train_images,
                                       max(1, args.stage_train_images // 10), DedupConfig.from_flags(args))
    if not args.skip_real:
        run_real(args, out)
    if not args.skip_synthetic:
        train, evals, rows, sources = synthetic(args.synthetic_train, args.synthetic_eval,
                                                args.synthetic_dim, args.planted)
        truth, _ = compare("synthetic", train, evals, args.threshold, args.synthetic_clusters,
                           args.kmeans_sample, out)
        planted = set(zip(rows.tolist(), sources.tolist()))
        print(f"planted pairs found by brute force: "
              f"{len(planted & set(map(tuple, truth.tolist())))}/{len(planted)}")
        bucketed_row = out["synthetic"]["rows"][1]
        per_million = bucketed_row["cpu_seconds"] / args.synthetic_train * 1e6
        print(f"bucketed search cost: {per_million:.1f} CPU s per million training images against "
              f"{args.synthetic_eval:,} eval images (index build included, this machine)")
        out["synthetic"]["bucketed_seconds_per_million_training"] = per_million
    if args.output_json:
        with open(args.output_json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
