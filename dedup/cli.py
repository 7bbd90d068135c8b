"""`align-dedup`: tools around the near-duplicate removal of evaluation images (ALIGN Appendix A).

  align-dedup calibrate --eval_images GLOB [--dedup_embedder pixel|SAVEDMODEL_DIR] [--max_images N]
      precision/recall per cosine threshold on augmented copies vs unrelated pairs.
  align-dedup fit-centroids --images GLOB --output centroids.npy [--dedup_num_clusters 4096]
      [--dedup_kmeans_sample_size 100000]: k-means on a sample, saved for --dedup_centroids.
--images/--eval_images accept image folder trees, webdataset .tar shards and TFRecords of schemas/.
The removal itself runs inside `align-curate` (--eval_images ...), see docs/DEDUP.md.
"""
import argparse
import json
import logging
import sys
import time

import numpy as np

from dedup import calibrate
from dedup.config import DedupConfig, add_dedup_flags
from dedup.embedders import embed_in_process
from dedup.eval_inputs import EvalInputError, iter_eval_images
from dedup.kmeans import fit_centroids, save_centroids


def _take(globs, limit, seed):
    """Up to `limit` readable images: a reservoir sample, so a huge set is read once."""
    rng = np.random.default_rng(seed)
    reservoir, skipped = [], []
    for i, item in enumerate(iter_eval_images(globs, skipped)):
        if len(reservoir) < limit:
            reservoir.append(item)
        else:
            j = int(rng.integers(0, i + 1))
            if j < limit:
                reservoir[j] = item
    for error in skipped:
        print(f"skipped (unreadable, not used here): {error['eval_key']}: {error['error']}: "
              f"{error['detail']}", file=sys.stderr)
    print(f"{len(skipped)} unreadable images skipped", file=sys.stderr)
    return sorted(reservoir)


def run_calibrate(args) -> int:
    config = DedupConfig.from_flags(args)
    images = [b for _, b in _take(config.eval_image_globs, args.max_images, args.seed)]
    augmentations = args.augmentations.split(",") if args.augmentations else list(calibrate.AUGMENTATIONS)
    start = time.time()
    data = calibrate.make_pairs(images, lambda batch: embed_in_process(config, batch), augmentations,
                                args.negatives_per_image, args.seed, config.eval_crop_fractions)
    thresholds = [float(t) for t in args.thresholds.split(",")]
    rows = calibrate.threshold_table(data, thresholds, args.positive_fraction)
    print(f"embedder={config.embedder} eval_crop_fractions={config.eval_crop_fractions} images={len(images)} positives/augmentation={len(images)} "
          f"negatives={data.negative_cosines.size} ({time.time() - start:.1f} s); "
          f"precision at {args.positive_fraction:.0%} positives; a pair matches when cosine > threshold")
    print(calibrate.format_table(rows))
    if args.output_json:
        with open(args.output_json, "w") as f:
            json.dump({"embedder": config.embedder, "images": len(images), "rows": rows}, f, indent=2)
    return 0


def run_fit_centroids(args) -> int:
    config = DedupConfig.from_flags(args)
    items = _take(args.images, config.kmeans_sample_size, args.seed)
    start = time.time()
    vectors = embed_in_process(config, [b for _, b in items])
    centroids = fit_centroids(vectors, config.num_clusters, config.kmeans_iterations)
    save_centroids(args.output, centroids, {"embedder": config.embedder, "sample_size": len(items),
                                            "iterations": config.kmeans_iterations,
                                            "images": list(args.images)})
    print(f"{centroids.shape[0]} centroids of dim {centroids.shape[1]} from {len(items)} images "
          f"-> {args.output} (+ .json) in {time.time() - start:.1f} s; "
          f"use with --dedup_centroids {args.output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="align-dedup", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    cal = sub.add_parser("calibrate", help="precision/recall per cosine threshold")
    add_dedup_flags(cal)
    cal.add_argument("--max_images", type=int, default=500)
    cal.add_argument("--negatives_per_image", type=int, default=50)
    cal.add_argument("--augmentations", default="",
                     help="comma list of " + ",".join(calibrate.AUGMENTATIONS) + " (default: all)")
    cal.add_argument("--thresholds", default=",".join(map(str, calibrate.DEFAULT_THRESHOLDS)))
    cal.add_argument("--positive_fraction", type=float, default=0.5,
                     help="share of true near-duplicates assumed when computing precision")
    cal.add_argument("--output_json", default=None)
    cal.add_argument("--seed", type=int, default=0)
    cal.set_defaults(func=run_calibrate)
    fit = sub.add_parser("fit-centroids", help="k-means on a sample, saved as .npy")
    add_dedup_flags(fit)
    fit.add_argument("--images", action="append", required=True, metavar="GLOB",
                     help="sample of training images (folder, webdataset .tar, TFRecord; repeatable)")
    fit.add_argument("--output", required=True, help="centroids .npy path (local or gs://)")
    fit.add_argument("--seed", type=int, default=0)
    fit.set_defaults(func=run_fit_centroids)
    return parser


def main(argv=None) -> int:
    logging.basicConfig(level=logging.WARNING)
    args = build_parser().parse_args(argv)
    if args.command == "calibrate" and not args.eval_images:
        print("align-dedup calibrate: --eval_images GLOB is required", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except EvalInputError as err:
        print(f"align-dedup: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
