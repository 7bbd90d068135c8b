"""Embedding and query throughput of an export for align-eval / align-search.

    .venv/bin/python bench/search_throughput.py --model WORKDIR/export \
        --input 'SPLIT/heldout-*.tfrecord' --input_format tfrecord [--max_items 512] [--batch_size 64]

Prints images/s and texts/s through the export's signatures (after one warm-up batch), and the
latency of one top-10 query against an exact faiss index (IndexFlatIP) of those images.
"""
import argparse
import itertools
import sys
import time

import numpy as np

from trainer.evaluation.datasets import read_pairs
from trainer.evaluation.exported_model import ExportedModel


def _rate(fn, items, batch_size):
    fn(items[:batch_size])  # warm-up: tracing and first-call allocation
    start = time.perf_counter()
    out = fn(items)
    return out, len(items) / (time.perf_counter() - start)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--input_format", choices=("tfrecord", "webdataset", "image_folder"), required=True)
    p.add_argument("--max_items", type=int, default=512)
    p.add_argument("--batch_size", type=int, default=64)
    args = p.parse_args(argv)
    import faiss

    pairs = list(itertools.islice(read_pairs(args.input, args.input_format), args.max_items))
    model = ExportedModel(args.model, batch_size=args.batch_size)
    images = [pair.load_image() for pair in pairs]
    image_emb, images_per_s = _rate(model.embed_images, images, args.batch_size)
    _, texts_per_s = _rate(model.embed_texts, [pair.text for pair in pairs], args.batch_size)
    index = faiss.IndexFlatIP(image_emb.shape[1])
    index.add(np.ascontiguousarray(image_emb))
    query = model.embed_texts(["a photo"])
    start = time.perf_counter()
    for _ in range(100):
        index.search(query, 10)
    query_ms = (time.perf_counter() - start) * 10
    print(f"{len(pairs)} items, batch {args.batch_size}: embed_image {images_per_s:.1f} images/s, "
          f"embed_text {texts_per_s:.1f} texts/s, top-10 query over {index.ntotal} rows {query_ms:.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
