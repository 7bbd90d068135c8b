"""Trainer throughput: pairs/s of the train step and of the input pipeline alone, per config.

    .venv/bin/python bench/train_throughput.py [--configs tiny_cpu b3_bert_mini] \
        [--corpus /work/real_corpus] [--records 2000] [--work /tmp/align_train_bench]

1. Converts the first --records pairs of the real corpus (captions.tsv + images/) to curated-style
   TFRecords (RGB JPEG, shorter side <= 346 px, quality 90, as align-curate stores them with
   pipeline.image_io.reencode_image) and a word-level vocab, in --work (cached; never committed).
2. Input pipeline alone: trainer.input_pipeline.build_train_dataset at the config's sizes (decode,
   resize, random crop + flip, tokenize, batch), pairs/s over --input_batches batches.
3. Train step alone: the real model/optimizer/train step (trainer/model.py, optimizer.py,
   train_step.py) on one cached batch repeated (no input cost), pairs/s over --steps steps after a
   warm-up (tracing) step.
4. Ratio input / train step: the input must keep up with >= 3x the step's need.
Prints one line per measurement and a JSON summary.

    .venv/bin/python bench/train_throughput.py --bad_input_overhead [--records 2000] [--rounds 5] \
        [--threads 1] [--previous_commit 106aac2]

Cost of the bad-input checks (trainer/bad_input.py) on the input pipeline alone: generated
curated-like TFRecords (JPEG q90, 346 px shorter side, landscape and portrait) read at the paper's
346 -> 289 px and at tiny_cpu's 72 -> 64 px, batch 32, by three pipelines in alternating rounds of
one process (so the ratios share the machine's load): "checked" (build_train_dataset as it is),
"located" (the same located, framing-checked records, then a plain parallel map(decode)) and
"plain" (the pipeline before the checks: TFRecordDataset interleave, plain parallel map(decode));
with --previous_commit C also "checked@C", build_train_dataset of trainer/input_pipeline.py at C
(106aac2: the first design, a per-record "try" dataset inside an interleave).
"""
import argparse
import csv
import importlib.util
import io
import json
import os
import platform
import statistics
import subprocess
import time

import numpy as np
import tensorflow as tf
from PIL import Image

from schemas import example_schema
from schemas import image_decode as image_io
from schemas.example_wire import serialize_example
from trainer import configs, input_pipeline, train_loop

RESERVED = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
BATCH_PER_CONFIG = {"tiny_cpu": 32, "b3_bert_mini": 8}  # CPU-sized batches; see docs/BENCHMARKS.md


def write_corpus(corpus: str, work: str, records: int, shards: int = 8) -> tuple:
    glob = os.path.join(work, "tfrecords", "train-*.tfrecord")
    vocab = os.path.join(work, "vocab.txt")
    if tf.io.gfile.glob(glob) and os.path.exists(vocab):
        return glob, vocab
    os.makedirs(os.path.join(work, "tfrecords"), exist_ok=True)
    with open(os.path.join(corpus, "captions.tsv"), newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[:records]
    writers = [tf.io.TFRecordWriter(os.path.join(
        work, "tfrecords", f"train-{s:05d}-of-{shards:05d}.tfrecord")) for s in range(shards)]
    words = {}
    for i, (caption, rel_path) in enumerate(rows):
        # Stored as align-curate stores it: RGB on white, shorter side <= 346 px, JPEG q90.
        with open(os.path.join(corpus, rel_path), "rb") as image_file:
            stored = image_io.reencode_image(image_file.read(), max_shorter_side_px=346, jpeg_quality=90)
        if isinstance(stored, str):  # an error name, e.g. decompression_bomb: not a trainable pair
            continue
        jpeg, height, width = stored.jpeg, stored.height, stored.width
        for w in caption.lower().split():
            words[w] = words.get(w, 0) + 1
        writers[i % shards].write(serialize_example(image_jpeg=jpeg, height=height, width=width,
                                                    text=caption, raw_text=caption, key=str(i)))
    for w in writers:
        w.close()
    with open(vocab, "w") as f:
        f.write("\n".join(RESERVED + sorted(words, key=lambda w: -words[w])[:30_000]) + "\n")
    return glob, vocab


def bench_input(cfg, glob, vocab, batches: int) -> float:
    it = iter(input_pipeline.build_train_dataset(None, glob, vocab, cfg))
    for _ in range(3):  # warm-up: fill the shuffle buffer and autotune
        next(it)
    start = time.perf_counter()
    for _ in range(batches):
        batch = next(it)
    _ = batch["image"].numpy()
    return batches * cfg.global_batch_size / (time.perf_counter() - start)


def bench_step(cfg, glob, vocab, steps: int) -> tuple:
    parts = train_loop.default_components()
    strategy = parts.build_strategy("one_device", None)
    parts.set_precision_policy(strategy, cfg.mixed_precision)
    vocab_size = len(input_pipeline.read_vocab(vocab))
    batch = next(iter(input_pipeline.build_train_dataset(None, glob, vocab, cfg)))
    with strategy.scope():
        model = parts.build_dual_encoder(cfg.model, vocab_size)
        optimizer = parts.build_optimizer(cfg.optim, model)
    step_fn = parts.make_train_step(model, optimizer, strategy, cfg)
    it = iter(strategy.distribute_datasets_from_function(
        lambda ctx: tf.data.Dataset.from_tensors(batch).repeat()))
    start = time.perf_counter()
    float(step_fn(it)["loss"])  # tracing and the first step
    first_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        loss = float(step_fn(it)["loss"])
    return steps * cfg.global_batch_size / (time.perf_counter() - start), first_s, loss


def write_generated(work: str, records: int, shards: int = 8) -> tuple:
    """Curated-like pairs: smooth random RGB fields with fine noise, 346 px shorter side (346 x 460
    and 460 x 346), JPEG q90 (~40-60 KB, as align-curate stores photos); cached in `work`."""
    glob = os.path.join(work, "generated", "train-*.tfrecord")
    vocab = os.path.join(work, "generated", "vocab.txt")
    if len(tf.io.gfile.glob(glob)) == shards and os.path.exists(vocab):
        return glob, vocab
    os.makedirs(os.path.dirname(vocab), exist_ok=True)
    words = ["a", "photo", "of", "red", "green", "blue", "cat", "dog", "tree", "house", "car"]
    with open(vocab, "w") as f:
        f.write("\n".join(RESERVED + words) + "\n")
    rng = np.random.default_rng(0)
    writers = [tf.io.TFRecordWriter(os.path.join(
        work, "generated", f"train-{s:05d}-of-{shards:05d}.tfrecord")) for s in range(shards)]
    for i in range(records):
        height, width = (346, 460) if i % 2 else (460, 346)
        coarse = rng.uniform(0, 255, (height // 23 + 1, width // 23 + 1, 3)).astype(np.uint8)
        smooth = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC))
        pixels = np.clip(smooth + rng.normal(0, 6, smooth.shape), 0, 255).astype(np.uint8)
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, format="JPEG", quality=90)
        text = " ".join(rng.choice(words, 6))
        writers[i % shards].write(example_schema.make_example(
            image_jpeg=out.getvalue(), height=height, width=width, text=text, raw_text=text,
            key=str(i)).SerializeToString())
    for w in writers:
        w.close()
    return glob, vocab


def plain_train_dataset(cfg, glob: str, vocab: str, located: bool) -> tf.data.Dataset:
    """build_train_dataset without the per-record try: `located` reads as it does (file/offset of
    every record, framing checked), else as the pipeline did before the checks; then shuffle and a
    plain parallel map(decode + crop), batch, tokenize, as before the checks."""
    files = input_pipeline.list_shards(glob)
    tokenizer = input_pipeline.make_text_tokenizer(vocab, cfg.model.text.max_tokens)
    batch_size = cfg.global_batch_size
    if located:
        ds = input_pipeline._records(files, None, cfg, True, cfg.seed).map(lambda e: e["record"])
    else:
        ds = tf.data.Dataset.from_tensor_slices(files).shuffle(len(files), seed=cfg.seed).repeat()
        ds = ds.interleave(lambda f: tf.data.TFRecordDataset(f, buffer_size=8 << 20),
                           cycle_length=min(cfg.cycle_length, len(files)), block_length=1,
                           num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    ds = ds.shuffle(cfg.shuffle_buffer, seed=cfg.seed)

    def decode(serialized):
        features = example_schema.parse_example(serialized)
        image = input_pipeline.preprocess_image_bytes(
            features[example_schema.IMAGE_ENCODED], cfg, True)
        return {"image": image, "text": features[example_schema.TEXT]}

    def tokenize(batch):
        token_ids, padding_mask = tokenizer(batch["text"])
        return {"image": batch["image"],
                "token_ids": tf.ensure_shape(token_ids, [batch_size, None]),
                "padding_mask": tf.ensure_shape(padding_mask, [batch_size, None])}
    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    ds = ds.batch(batch_size, drop_remainder=True)
    ds = ds.map(tokenize, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def images_per_s(ds: tf.data.Dataset, batches: int, batch_size: int, threads: int = 0) -> tuple:
    """(images/s, CPU ms of this process per image) over `batches` batches after a warm-up;
    threads > 0: the whole pipeline on a private pool of that many threads, one per op."""
    if threads:
        options = tf.data.Options()
        options.threading.private_threadpool_size = threads
        options.threading.max_intra_op_parallelism = 1
        ds = ds.with_options(options)
    it = iter(ds)
    for _ in range(3):  # warm-up: fill the shuffle buffer and autotune
        next(it)
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(batches):
        batch = next(it)
    _ = batch["image"].numpy()
    images = batches * batch_size
    return (images / (time.perf_counter() - start),
            (time.process_time() - cpu_start) * 1e3 / images)


def input_pipeline_at(commit: str, work: str):
    """trainer/input_pipeline.py as it was at `commit` (git show), imported as its own module."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    source = subprocess.run(["git", "show", f"{commit}:trainer/input_pipeline.py"], cwd=repo,
                            check=True, capture_output=True).stdout
    path = os.path.join(work, f"input_pipeline_at_{commit}.py")
    with open(path, "wb") as f:
        f.write(source)
    spec = importlib.util.spec_from_file_location(f"input_pipeline_at_{commit}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bench_bad_input_overhead(args) -> dict:
    glob, vocab = write_generated(args.work, args.records)
    sizes = {"paper 346->289": (346, 289), "tiny_cpu 72->64": (72, 64)}
    variants = {
        "checked": lambda cfg: input_pipeline.build_train_dataset(None, glob, vocab, cfg),
        "located": lambda cfg: plain_train_dataset(cfg, glob, vocab, located=True),
        "plain": lambda cfg: plain_train_dataset(cfg, glob, vocab, located=False)}
    if args.previous_commit:  # the same pipeline at another commit, e.g. an earlier design
        previous = input_pipeline_at(args.previous_commit, args.work)
        variants[f"checked@{args.previous_commit}"] = (
            lambda cfg: previous.build_train_dataset(None, glob, vocab, cfg))
    out = {}
    for size_name, (resize, crop) in sizes.items():
        cfg = configs.get("tiny_cpu")
        cfg.global_batch_size, cfg.shuffle_buffer = 32, 256
        cfg.model.image.resize_px, cfg.model.image.crop_px = resize, crop
        rates = {name: [] for name in variants}
        cpu_ms = {name: [] for name in variants}
        for _ in range(args.rounds):  # alternating, so that the variants share the load
            for name, build in variants.items():
                rate, ms = images_per_s(build(cfg), args.input_batches, 32, args.threads)
                rates[name].append(round(rate, 1))
                cpu_ms[name].append(round(ms, 3))
        rate = {name: statistics.median(r) for name, r in rates.items()}
        ms = {name: statistics.median(r) for name, r in cpu_ms.items()}
        out[size_name] = {
            "images_per_s": rate, "cpu_ms_per_image": ms,
            "checked_over_plain": round(rate["checked"] / rate["plain"], 3),
            "checked_over_located": round(rate["checked"] / rate["located"], 3),
            "located_over_plain": round(rate["located"] / rate["plain"], 3),
            "cpu_checked_over_plain": round(ms["checked"] / ms["plain"], 3),
            **{f"{name}_over_plain": round(rate[name] / rate["plain"], 3)
               for name in rate if "@" in name},
            **{f"cpu_{name}_over_plain": round(ms[name] / ms["plain"], 3)
               for name in ms if "@" in name},
            "rounds_images_per_s": rates, "rounds_cpu_ms_per_image": cpu_ms}
        print(f"{size_name}: " + ", ".join(f"{n} {rate[n]:.1f} images/s ({ms[n]:.2f} CPU ms each)"
                                           for n in variants)
              + f"; checked/plain {out[size_name]['checked_over_plain']:.3f}", flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--configs", nargs="+", default=["tiny_cpu", "b3_bert_mini"])
    p.add_argument("--corpus", default="/work/real_corpus")
    p.add_argument("--records", type=int, default=2000)
    p.add_argument("--work", default="/tmp/align_train_bench")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--input_batches", type=int, default=30)
    p.add_argument("--bad_input_overhead", action="store_true",
                   help="only the cost of the bad-input checks on generated data (module doc)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--previous_commit", default=None,
                   help="--bad_input_overhead: also build_train_dataset as of this commit")
    p.add_argument("--threads", type=int, default=0,
                   help="--bad_input_overhead: tf.data private threads (0: TensorFlow's default)")
    args = p.parse_args()
    if args.bad_input_overhead:
        print(json.dumps({"machine": f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
                          "tensorflow": tf.__version__, "threads": args.threads or "default",
                          "sizes": bench_bad_input_overhead(args)}, indent=2))
        return
    glob, vocab = write_corpus(args.corpus, args.work, args.records)
    results = {"machine": f"{platform.processor() or platform.machine()}, "
                          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
               "tensorflow": tf.__version__, "configs": {}}
    for name in args.configs:
        cfg = configs.get(name)
        cfg.global_batch_size = BATCH_PER_CONFIG.get(name, cfg.global_batch_size)
        cfg.shuffle_buffer = min(cfg.shuffle_buffer, 500)
        cfg.mixed_precision = "float32"  # CPU
        input_pps = bench_input(cfg, glob, vocab, args.input_batches)
        print(f"{name}: input pipeline alone {input_pps:.1f} pairs/s "
              f"({cfg.model.image.resize_px}->{cfg.model.image.crop_px} px, batch "
              f"{cfg.global_batch_size})", flush=True)
        step_pps, first_s, loss = bench_step(cfg, glob, vocab, args.steps)
        ratio = input_pps / step_pps
        print(f"{name}: train step {step_pps:.2f} pairs/s (first step incl. tracing {first_s:.1f}"
              f" s, loss {loss:.3f}); input/step = {ratio:.1f}x (target >= 3x: "
              f"{'met' if ratio >= 3 else 'NOT met'})", flush=True)
        results["configs"][name] = {"batch": cfg.global_batch_size,
                                    "input_pairs_per_s": round(input_pps, 2),
                                    "train_step_pairs_per_s": round(step_pps, 3),
                                    "first_step_s": round(first_s, 1),
                                    "input_over_step": round(ratio, 1)}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
