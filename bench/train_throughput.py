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
"""
import argparse
import csv
import json
import os
import platform
import time

import tensorflow as tf

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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--configs", nargs="+", default=["tiny_cpu", "b3_bert_mini"])
    p.add_argument("--corpus", default="/work/real_corpus")
    p.add_argument("--records", type=int, default=2000)
    p.add_argument("--work", default="/tmp/align_train_bench")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--input_batches", type=int, default=30)
    args = p.parse_args()
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
