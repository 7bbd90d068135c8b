"""align-curate end to end on the bundled real sample (demo_data/: 329 pairs, 298 public-domain
OpenClipArt drawings and 31 Apache-2.0 Noto emoji, see demo_data/ATTRIBUTION.md)."""
import collections
import csv
import glob
import io
import json
import os

import pytest
import tensorflow as tf
from PIL import Image

from pipeline import curate, reasons
from schemas.example_schema import parse_example, parse_example_dict

DEMO = os.path.join(os.path.dirname(__file__), "..", "..", "demo_data")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("curated"))
    stats = curate.run(["--input", os.path.join(DEMO, "webdataset", "*.tar"),
                        "--input_format", "webdataset", "--output_dir", out,
                        "--vocab_size", "2000", "--runner=DirectRunner"])
    return out, stats


def manifest():
    with open(os.path.join(DEMO, "MANIFEST.tsv"), newline="", encoding="utf-8") as handle:
        return {row["key"]: row["expected"] for row in csv.DictReader(handle, delimiter="\t")}


def test_stats_match_the_independently_computed_manifest(run):
    out, stats = run
    expected = collections.Counter(manifest().values())
    assert stats == json.load(open(os.path.join(out, "stats.json"), encoding="utf-8"))
    assert stats["input_pairs"] == sum(expected.values()) == 329
    assert stats["kept_pairs"] == expected["kept"]
    assert {r: n for r, n in stats["dropped"].items() if n} == {
        r: n for r, n in expected.items() if r != "kept"}
    assert sum(stats["errors"].values()) == 0
    assert stats["input_pairs"] == (stats["kept_pairs"] + sum(stats["dropped"].values())
                                    + sum(stats["errors"].values()))
    assert stats["filters"][reasons.UNSAFE]["applied"] is False
    assert set(stats["histograms"]) == {"shorter_side_px", "aspect_ratio", "words_per_text",
                                        "alt_texts_per_image", "images_per_alt_text"}
    assert sum(stats["histograms"]["shorter_side_px"]["counts"]) == 329


def test_tfrecords_hold_exactly_the_kept_pairs_in_the_schema(run):
    out, _ = run
    files = sorted(glob.glob(os.path.join(out, "tfrecords", "train-*-of-*.tfrecord")))
    assert files
    examples = [parse_example_dict(r.numpy()) for r in tf.data.TFRecordDataset(files)]
    kept = {k for k, outcome in manifest().items() if outcome == "kept"}
    assert {e["key"].decode() for e in examples} == kept
    for example in examples[:20]:
        image = Image.open(io.BytesIO(example["image/encoded"]))
        assert image.format == "JPEG" and image.mode == "RGB"
        assert image.size == (example["image/width"], example["image/height"])
        assert min(image.size) <= 346 and min(example["image/original_width"],
                                              example["image/original_height"]) > 200
        assert example["text"] and example["text/raw"] and len(example["image/sha256"]) == 64
    parsed = next(iter(tf.data.TFRecordDataset(files).map(parse_example)))
    assert parsed["image/encoded"].dtype == tf.string


def test_vocab_and_report(run):
    out, stats = run
    vocab = open(os.path.join(out, "vocab.txt"), encoding="utf-8").read().splitlines()
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert len(vocab) == stats["vocab"]["achieved"] and stats["vocab"]["requested"] == 2000
    html = open(os.path.join(out, "report.html"), encoding="utf-8").read()
    assert "NOT APPLIED" in html and "image_too_small" in html and "data:image/jpeg" in html


def test_outcomes_give_every_pair_its_manifest_reason(run):
    out, _ = run
    lines = []
    for path in sorted(glob.glob(os.path.join(out, "outcomes", "outcomes-*-of-*.jsonl"))):
        with open(path, encoding="utf-8") as handle:
            lines += [json.loads(line) for line in handle]
    assert len(lines) == 329 and len({o["key"] for o in lines}) == 329
    assert {o["key"]: o["reason"] or o["status"] for o in lines} == manifest()
    assert {o["status"] for o in lines} == {"kept", "dropped"}
