"""`align-dedup`: tools around the near-duplicate removal of evaluation images (ALIGN Appendix A).

  align-dedup calibrate --eval_images GLOB [--dedup_embedder pixel|SAVEDMODEL_DIR] [--max_images N]
      [--families F,...] [--output calibration.json (--target_false_positive_rate X |
      --target_recall R [--target_family ordinary_copy])]: recall per augmentation family
      (dedup/augment.py) and false positives per threshold, scored as the stage decides; --output
      writes the chosen threshold with the embedder and view settings for --dedup_calibration.
  align-dedup fit-centroids --images GLOB --output centroids.npy [--dedup_num_clusters 4096]
      [--dedup_kmeans_sample_size 100000] [--fit sample|all]: k-means on a sample (default) or,
      with --fit all, on every image in Beam (dedup/kmeans_beam.py), saved for --dedup_centroids.
  align-dedup train-embedder --images GLOB --workdir DIR [--steps N] [--batch_size B] [--image_px P]
      [--embedding_dim D] [--learning_rate LR] [--seed S]: trains the learned copy-detection
      embedder (dedup/train_embedder.py), exports DIR/export for --dedup_embedder.
--images/--eval_images accept image folder trees, webdataset .tar shards and TFRecords of schemas/.
The removal itself runs inside `align-curate` (--eval_images ...), see docs/DEDUP.md.
"""
import argparse
import json
import logging
import sys
import time

import numpy as np

from dedup import calibrate, train_embedder
from dedup.config import DedupConfig, DedupFlagError, add_dedup_flags
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
    import dataclasses
    import shlex

    from dedup.config import calibration_record, write_calibration

    config = DedupConfig.from_flags(args)
    if args.output and (args.target_false_positive_rate is None) == (args.target_recall is None):
        print("align-dedup calibrate: --output needs one of --target_false_positive_rate, "
              "--target_recall", file=sys.stderr)
        return 2
    images = [b for _, b in _take(config.eval_image_globs, args.max_images, args.seed)]
    families = args.families.split(",") if args.families else list(calibrate.DEFAULT_FAMILIES)
    start = time.time()
    data = calibrate.make_pairs(images, lambda batch: embed_in_process(config, batch), config,
                                families, args.negatives_per_image, args.seed)
    thresholds = [float(t) for t in args.thresholds.split(",")]
    chosen = None
    if args.output:
        chosen = calibrate.choose_threshold(data, args.target_false_positive_rate, args.target_recall,
                                            args.target_family)
        thresholds = sorted(set(thresholds) | {chosen[0]})
    rows = calibrate.threshold_table(data, thresholds, args.positive_fraction)
    score = ("aligned score (coarse cosine > %g first)" % config.verify_candidates_above
             if config.verifies else "cosine, best over the eval views")
    from dedup.beam_stage import view_geometries

    print(f"embedder={config.embedder} eval views per image={len(view_geometries(config))} "
          f"images={len(images)} positives/family={len(images)} "
          f"negatives={data.negative_cosines.size} ({time.time() - start:.1f} s); "
          f"precision at {args.positive_fraction:.0%} positives; a pair matches when its {score} > "
          "threshold")
    print(calibrate.format_table(rows))
    if args.output_json:  # local or gs:// (schemas/input_files: Beam's FileSystems, else gfile)
        from schemas.input_files import create_file

        with create_file(args.output_json) as f:
            f.write(json.dumps({"embedder": config.embedder, "images": len(images), "rows": rows},
                               indent=2).encode("utf-8"))
    if chosen is not None:
        threshold, chosen_by = chosen
        calibrated = dataclasses.replace(config, cosine_threshold=threshold)
        record = calibration_record(
            calibrated, chosen_by, calibrate.measured_at(data, threshold, args.positive_fraction),
            "align-dedup " + shlex.join(args.argv), len(images))
        write_calibration(args.output, record)
        print(f"threshold {threshold} ({', '.join(f'{k} {v}' for k, v in chosen_by.items())}) -> "
              f"{args.output}; use with --dedup_calibration {args.output}")
    return 0


def run_fit_centroids(args) -> int:
    config = DedupConfig.from_flags(args)
    if (args.fit or config.kmeans_fit) == "all":
        return _fit_centroids_on_all(args, config)
    items = _take(args.images, config.kmeans_sample_size, args.seed)
    start = time.time()
    vectors = embed_in_process(config, [b for _, b in items])
    centroids = fit_centroids(vectors, config.num_clusters, config.kmeans_iterations)
    save_centroids(args.output, centroids, {"fit": "sample", "embedder": config.embedder,
                                            "sample_size": len(items),
                                            "iterations": config.kmeans_iterations,
                                            "images": list(args.images)})
    print(f"{centroids.shape[0]} centroids of dim {centroids.shape[1]} from {len(items)} images "
          f"-> {args.output} (+ .json) in {time.time() - start:.1f} s; "
          f"use with --dedup_centroids {args.output}")
    return 0


def _fit_centroids_on_all(args, config) -> int:
    import shlex

    from apache_beam.options.pipeline_options import PipelineOptions

    from dedup.kmeans_beam import fit_on_all_images

    start = time.time()
    iterations = (config.kmeans_all_iterations if args.all_iterations is None
                  else args.all_iterations)
    meta = fit_on_all_images(args.images, config, args.output, iterations, args.seed,
                             PipelineOptions(shlex.split(args.beam_options)))
    for report in meta["history"]:
        print(f"iteration {report['iteration']}: mean cosine to the nearest centroid "
              f"{report['objective']:.6f}, {report['empty_clusters']} empty clusters")
    print(f"{meta['num_clusters']} centroids of dim {meta['dim']} fitted on all {meta['vectors']} "
          f"vectors ({meta['zero_vectors_dropped']} zero, {meta['images_unreadable']} unreadable "
          f"images left out) -> {args.output} (+ .json) in {time.time() - start:.1f} s; "
          f"use with --dedup_centroids {args.output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="align-dedup", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    cal = sub.add_parser("calibrate", help="recall/false positives per threshold; calibration file")
    add_dedup_flags(cal)
    cal.add_argument("--max_images", type=int, default=500)
    cal.add_argument("--negatives_per_image", type=int, default=0,
                     help="unrelated eval images per training image (default 0: all pairs)")
    cal.add_argument("--families", default="",
                     help="comma list of dedup/augment.py families (default: all of "
                          + ",".join(calibrate.DEFAULT_FAMILIES) + ")")
    cal.add_argument("--thresholds", default=",".join(map(str, calibrate.DEFAULT_THRESHOLDS)))
    cal.add_argument("--positive_fraction", type=float, default=0.5,
                     help="share of true near-duplicates assumed when computing precision")
    cal.add_argument("--output_json", default=None,
                     help="the threshold table as JSON (local or gs://)")
    cal.add_argument("--output", default=None, metavar="FILE",
                     help="calibration file for --dedup_calibration: the chosen threshold, how it "
                          "was chosen, the embedder and view settings, the measurements at it")
    cal.add_argument("--target_false_positive_rate", type=float, default=None,
                     help="--output: the lowest threshold with at most this share of unrelated "
                          "pairs above it (a training image meets N eval images: false drops per "
                          "image ~ N x this)")
    cal.add_argument("--target_recall", type=float, default=None,
                     help="--output: the highest threshold keeping this recall on --target_family")
    cal.add_argument("--target_family", default="ordinary_copy")
    cal.add_argument("--seed", type=int, default=0)
    cal.set_defaults(func=run_calibrate)
    fit = sub.add_parser("fit-centroids", help="k-means on a sample or all images, saved as .npy")
    add_dedup_flags(fit)
    fit.add_argument("--images", action="append", required=True, metavar="GLOB",
                     help="training images (folder, webdataset .tar, TFRecord; repeatable)")
    fit.add_argument("--output", required=True, help="centroids .npy path (local or gs://)")
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--fit", choices=("sample", "all"), default=None,
                     help="sample: faiss on --dedup_kmeans_sample_size images, in-process; all: "
                          "a sample fit (k-means++ seeds) refined by --all_iterations passes over "
                          "every image (Beam, dedup/kmeans_beam.py); default: "
                          "--dedup_kmeans_fit, the same choice as align-curate's")
    fit.add_argument("--all_iterations", type=int, default=None,
                     help="--fit all: Lloyd iterations over all images (each one full pass; "
                          "default: --dedup_kmeans_all_iterations, 10)")
    fit.add_argument("--beam_options", default="",
                     help="--fit all: pipeline options, e.g. '--runner=DataflowRunner --project=P "
                          "--region=R --temp_location=gs://...' (default: local DirectRunner)")
    fit.set_defaults(func=run_fit_centroids)
    train_embedder.add_subcommand(sub)
    return parser


def main(argv=None) -> int:
    logging.basicConfig(level=logging.WARNING)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    if args.command == "calibrate" and not args.eval_images:
        print("align-dedup calibrate: --eval_images GLOB is required", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except (EvalInputError, DedupFlagError) as err:
        print(f"align-dedup: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
