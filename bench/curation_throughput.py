"""Benchmark: pairs/s per core of the whole curation vs the Pillow decode+resize+re-encode bound.

    .venv/bin/python bench/curation_throughput.py --input '/work/real_corpus/webdataset/*.tar' --repeats 3

In one run, on the same images:
1. the *bound*: plain Pillow, one process, every image of the input decoded, converted to RGB,
   resized so the shorter side is at most 346 px and re-encoded as JPEG (quality 90), nothing
   else; pairs per CPU-second.
2. the *pipeline*: `python -m pipeline.curate` end to end in a child process (read tars, header
   inspection, filters, corpus counts, shuffles, TFRecords, vocab, stats, report) on the
   DirectRunner (FnApiRunner), in one process or with `--direct_running_mode=multi_processing`;
   pairs per CPU-second of that process and its workers (so other load on a shared machine does
   not count), plus wall-clock figures. A second run on the first 100 pairs measures the fixed
   cost (interpreter, imports, graph, vocab learning, report) and gives the marginal rate.
Prints the ratio pipeline/bound (target >= 0.7). Not a test: figures go to docs/BENCHMARKS.md.

The pipeline decodes only its *candidates*: pairs whose reason is already final from the image
header and the pair's own text (image_too_small, aspect_ratio, too_few_words, too_many_words) are
never decoded. So the bench also prints a *same-work* bound, Pillow on exactly the images the
pipeline decodes (selected with `pipeline.records.inspect_pair`, no pixels decoded), and the share
of the pipeline's CPU that this image work is; the rest is the pipeline's own overhead (Beam, tar
reading, text, corpus counts, vocab, report). `--curate_args` passes flags to align-curate, e.g.
`--curate_args="--min_image_side_px 63 --min_words 1"` (docs/RESULTS.md's run: most pairs kept).
"""
import argparse
import glob
import io
import json
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings

from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif")


def load_images(pattern):
    images = []
    for path in sorted(glob.glob(pattern)):
        with tarfile.open(path) as tar:
            for member in tar:
                if member.isfile() and member.name.lower().endswith(IMAGE_EXTENSIONS):
                    images.append(tar.extractfile(member).read())
    return images


def images_the_pipeline_decodes(pattern, curate_args):
    """Image bytes of the candidates: pairs that pass the header checks and the local filters
    under these flags (pipeline.records.inspect_pair reads headers and texts, no pixels)."""
    sys.path.insert(0, REPO)
    from pipeline import options, records
    from schemas import input_readers as readers
    config, _ = options.parse_args(["--input", pattern, "--input_format", "webdataset",
                                       "--output_dir", "unused", *curate_args])
    candidates = []
    for path in sorted(glob.glob(pattern)):
        for raw in readers.read_webdataset(path):
            record = records.inspect_pair(raw, config)
            if record["status"] == records.CANDIDATE:
                candidates.append(record["image"])
    return candidates


def pillow_reencode(data, shorter_side_px=346, quality=90, max_pixels=89_478_485):
    """Plain Pillow; returns None for what it cannot or must not decode (bombs over the cap)."""
    try:
        image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, OSError, ValueError):
        return None
    if image.width * image.height > max_pixels:
        return None
    if image.format == "JPEG":
        image.draft("RGB", (shorter_side_px * 2, shorter_side_px * 2))
    image = image.convert("RGB")
    short = min(image.size)
    if short > shorter_side_px:
        image = image.resize((round(image.width * shorter_side_px / short),
                              round(image.height * shorter_side_px / short)),
                             Image.Resampling.BICUBIC, reducing_gap=3.0)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def cpu_seconds():
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def bench_bound(images):
    start_cpu, start_wall = time.process_time(), time.perf_counter()
    skipped = sum(pillow_reencode(data) is None for data in images)
    return time.process_time() - start_cpu, time.perf_counter() - start_wall, skipped


def bench_pipeline(pattern, beam_args, curate_args=()):
    """Runs `python -m pipeline.curate` in a child process: CPU-s of the whole run (imports,
    graph construction, workers) from RUSAGE_CHILDREN, so every run pays its own start-up."""
    output_dir = tempfile.mkdtemp(prefix="curation_bench_")
    command = [sys.executable, "-m", "pipeline.curate", "--input", pattern,
               "--input_format", "webdataset", "--output_dir", output_dir,
               "--vocab_size", "2000", *curate_args, *beam_args]
    try:
        start_cpu, start_wall = cpu_seconds(), time.perf_counter()
        subprocess.run(command, check=True, cwd=REPO, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        cpu, wall = cpu_seconds() - start_cpu, time.perf_counter() - start_wall
        with open(os.path.join(output_dir, "stats.json"), encoding="utf-8") as handle:
            return json.load(handle), cpu, wall
    finally:
        shutil.rmtree(output_dir, ignore_errors=True)


def small_tar(pattern, pairs, directory):
    """The first `pairs` samples of the first tar, to measure the pipeline's fixed cost."""
    path = os.path.join(directory, "small.tar")
    keys = []
    with tarfile.open(sorted(glob.glob(pattern))[0]) as source, tarfile.open(path, "w") as out:
        for member in source:
            key = member.name.split(".")[0]
            if key not in keys:
                if len(keys) == pairs:
                    break
                keys.append(key)
            out.addfile(member, source.extractfile(member))
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", default="/work/real_corpus/webdataset/*.tar")
    parser.add_argument("--workers", type=int, default=1,
                        help="1: in-process FnApiRunner; >1: multi_processing with N workers")
    parser.add_argument("--fixed_cost_pairs", type=int, default=100,
                        help="also run on this many pairs to estimate the fixed cost (0: skip)")
    parser.add_argument("--curate_args", default="",
                        help="extra align-curate flags, "
                             "e.g. '--min_image_side_px 63 --min_words 1'")
    parser.add_argument("--repeats", type=int, default=1,
                        help="run bound and pipeline this many times, interleaved; the medians "
                             "give the ratio (this machine's CPU-s move by ~10%% between runs)")
    args = parser.parse_args()
    curate_args = shlex.split(args.curate_args)
    warnings.simplefilter("ignore")  # Pillow's bomb warnings for the corpus's 100+ Mpx drawings
    beam_args = ["--runner=DirectRunner"]
    if args.workers > 1:
        beam_args += ["--direct_running_mode=multi_processing",
                      f"--direct_num_workers={args.workers}"]

    images = load_images(args.input)
    bound_cpus, cpus, walls = [], [], []
    for repeat in range(args.repeats):
        bound_cpu, _, skipped = bench_bound(images)
        stats, cpu, wall = bench_pipeline(args.input, beam_args, curate_args)
        bound_cpus.append(bound_cpu)
        cpus.append(cpu)
        walls.append(wall)
        if args.repeats > 1:
            print(f"run {repeat + 1}: bound {bound_cpu:.1f} CPU-s, pipeline {cpu:.1f} CPU-s, "
                  f"ratio {bound_cpu / cpu:.2f}")
    bound_cpu, cpu, wall = (statistics.median(v) for v in (bound_cpus, cpus, walls))
    median = " (medians)" if args.repeats > 1 else ""
    bound = len(images) / bound_cpu
    print(f"bound{median}: Pillow decode+resize+re-encode of {len(images)} images ({skipped} "
          f"refused as bombs/undecodable): {bound_cpu:.1f} CPU-s -> {bound:.1f} pairs/s per core")
    pairs = stats["input_pairs"]
    per_core = pairs / cpu
    print(f"pipeline{median}: {pairs} pairs (kept {stats['kept_pairs']}) with {args.workers} "
          f"worker(s): {cpu:.1f} CPU-s, {wall:.1f} s wall -> {per_core:.1f} pairs/s per core "
          f"(wall: {pairs / wall:.1f} pairs/s, {pairs / wall / args.workers:.1f} per worker)")
    print(f"ratio pipeline/bound (per core, CPU time): {per_core / bound:.2f}  (target >= 0.7)")
    decoded = images_the_pipeline_decodes(args.input, curate_args)
    same_cpu, _, _ = bench_bound(decoded)
    print(f"same-work bound: Pillow on the {len(decoded)} images the pipeline decodes "
          f"(candidates; the other {len(images) - len(decoded)} have a final reason from header "
          f"and text): {same_cpu:.1f} CPU-s = {same_cpu / cpu:.0%} of the pipeline's CPU; "
          f"overhead {cpu - same_cpu:.1f} CPU-s = {(cpu - same_cpu) / pairs * 1000:.2f} "
          f"CPU-ms per pair")
    if args.fixed_cost_pairs:
        directory = tempfile.mkdtemp(prefix="curation_bench_small_")
        try:
            small_stats, small_cpu, _ = bench_pipeline(
                small_tar(args.input, args.fixed_cost_pairs, directory), beam_args, curate_args)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        marginal = (pairs - small_stats["input_pairs"]) / (cpu - small_cpu)
        print(f"fixed cost (a run on {small_stats['input_pairs']} pairs: imports, graph, "
              f"vocab, report): {small_cpu:.1f} CPU-s; marginal {marginal:.1f} pairs/s per core "
              f"-> marginal ratio {marginal / bound:.2f}")


if __name__ == "__main__":
    main()
