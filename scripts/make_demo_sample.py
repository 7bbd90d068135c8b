#!/usr/bin/env python3
"""Builds demo_data/: a few hundred real image/alt-text pairs picked from the real corpus.

The real corpus (OpenClipArt 0.18 drawings + Noto emoji) is built by
`python3 ../shared/corpus/build_real_corpus.py /work/real_corpus`; this script picks pairs from its
webdataset shards, deterministically, so that `make demo` with the paper's defaults shows kept pairs
and every drop reason the real data gives (see demo_data/ATTRIBUTION.md for licenses and the
selection). Pairs are copied byte for byte ({key}.png, {key}.txt, {key}.json); nothing is
generated. The category of each pair, computed from the PNG header and pipeline.text_normalize, is
written to demo_data/MANIFEST.tsv.

Usage: .venv/bin/python scripts/make_demo_sample.py [--corpus /work/real_corpus] [--out demo_data]
"""
import argparse
import collections
import glob
import io
import json
import os
import random
import struct
import sys
import tarfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pipeline.text_normalize import normalize_text, unigrams  # noqa: E402

SEED = 0
SHARD_SIZE = 200
MAX_FILE_BYTES = 30_000  # keeps the sample well under 10 MB
SHARED_TITLES = {  # real titles repeated over many distinct images in OpenClipArt
    "Lemon SVG theme": 12,  # 12 > 10 distinct images: alt_text_shared (paper 3)
    "Simple arrows": 12,  # 12 images, 2 words: too_few_words (local reasons come first)
    "Clipart by Nicu Buculei - pear": 10,  # exactly 10 images: NOT shared (paper: more than 10)
}
NOISY_TEXT_KEYS = [  # HTML entities, mojibake and control characters as found in the titles
    "000000151", "000002335", "000002407", "000002754", "000002819", "000002994", "000005404",
    "000005749", "000006300",
]
EMOJI_SHA_GROUP_TEXT = "snowboarder"  # one image with 6 alt-texts (skin tones share one PNG)
COUNTS = {"kept": 170, "too_few_words": 40, "empty_text": 3, "image_too_small": 30, "emoji": 40}


def read_corpus(corpus):
    for path in sorted(glob.glob(os.path.join(corpus, "webdataset", "*.tar"))):
        members = collections.defaultdict(dict)
        with tarfile.open(path) as tar:
            for member in tar:
                key, ext = member.name.split(".", 1)
                members[key][ext] = tar.extractfile(member).read()
        for key, files in members.items():
            meta = json.loads(files["json"])
            width, height = struct.unpack(">II", files["png"][16:24])  # PNG IHDR
            text = normalize_text(files["txt"].decode("utf-8", errors="replace"))
            yield dict(key=key, files=files, meta=meta, width=width, height=height,
                       text=text, words=len(unigrams(text)))


def image_ok(r):  # paper 3: shorter side > 200 px and aspect ratio < 3
    short, long_ = sorted((r["width"], r["height"]))
    return short > 200 and long_ / short < 3


def select(records):
    rng = random.Random(SEED)
    by_text = collections.defaultdict(list)
    for r in records:
        by_text[r["text"]].append(r)
    chosen = {}

    def take(rs, category, n=None):
        rs = [r for r in rs if r["key"] not in chosen]
        if n is not None and len(rs) > n:
            rs = sorted(rng.sample(rs, n), key=lambda r: r["key"])
        for r in rs:
            chosen[r["key"]] = (r, category)

    oc = [r for r in records if r["meta"]["source"] == "openclipart"]
    small = lambda r: len(r["files"]["png"]) <= MAX_FILE_BYTES  # noqa: E731
    for title, n in SHARED_TITLES.items():
        group = sorted(by_text[title], key=lambda r: len(r["files"]["png"]))[:n]
        take(group, f"title_on_{len(group)}_images")
    take([r for r in records if r["key"] in NOISY_TEXT_KEYS], "noisy_text")
    take([r for r in oc if r["words"] == 20 and image_ok(r)], "twenty_words")
    for side in (200, 201):  # paper 3 boundary: shorter side must be larger than 200 px
        take([r for r in oc if min(r["width"], r["height"]) == side and small(r)], f"side_{side}px", 4)
    take([r for r in oc if not image_ok(r) and min(r["width"], r["height"]) > 200], "aspect_ratio")
    unique = [r for r in oc if len(by_text[r["text"]]) == 1 and small(r)]
    take([r for r in unique if image_ok(r) and 3 <= r["words"] <= 20], "kept", COUNTS["kept"])
    take([r for r in unique if image_ok(r) and 1 <= r["words"] <= 2], "too_few_words",
         COUNTS["too_few_words"])
    take([r for r in oc if r["text"] == "" and image_ok(r) and small(r)], "empty_text",
         COUNTS["empty_text"])
    take([r for r in unique if not image_ok(r)], "image_too_small", COUNTS["image_too_small"])
    emoji = [r for r in records if r["meta"]["source"] == "noto-emoji"]
    sha = {r["meta"]["sha256"] for r in emoji if r["text"] == EMOJI_SHA_GROUP_TEXT}
    take([r for r in emoji if r["meta"]["sha256"] in sha], "emoji_same_image")
    bases = [r for r in emoji if r["meta"].get("near_duplicate_of_code") is None]
    picked_bases = rng.sample(bases, COUNTS["emoji"] // 4)
    codes = {r["meta"]["code"] for r in picked_bases}
    take(picked_bases, "emoji")
    take([r for r in emoji if r["meta"].get("near_duplicate_of_code") in codes], "emoji_skin_tone",
         COUNTS["emoji"] - len(picked_bases))
    return sorted(chosen.values(), key=lambda rc: rc[0]["key"])


def expected_reasons(selected, max_images_per_alt_text=10, min_words=3, max_words=20):
    """Reason of each pair under the paper's defaults, rare tokens aside (see ATTRIBUTION.md)."""
    images_per_text = collections.defaultdict(set)
    for r, _ in selected:
        images_per_text[r["text"]].add(r["meta"]["sha256"])
    out = {}
    for r, _ in selected:
        short, long_ = sorted((r["width"], r["height"]))
        if short <= 200:
            reason = "image_too_small"
        elif long_ / short >= 3:
            reason = "aspect_ratio"
        elif r["words"] < min_words:  # local reasons first (pipeline/reasons.py)
            reason = "too_few_words"
        elif r["words"] > max_words:
            reason = "too_many_words"
        elif len(images_per_text[r["text"]]) > max_images_per_alt_text:
            reason = "alt_text_shared"
        else:
            reason = "kept"
        out[r["key"]] = reason
    return out


def write(selected, out):
    os.makedirs(os.path.join(out, "webdataset"), exist_ok=True)
    for old in glob.glob(os.path.join(out, "webdataset", "*.tar")):
        os.remove(old)
    for shard in range(0, len(selected), SHARD_SIZE):
        path = os.path.join(out, "webdataset", f"{shard // SHARD_SIZE:05d}.tar")
        with tarfile.open(path, "w") as tar:
            for r, _ in selected[shard:shard + SHARD_SIZE]:
                for ext in ("png", "txt", "json"):
                    info = tarfile.TarInfo(f"{r['key']}.{ext}")
                    info.size, info.mtime = len(r["files"][ext]), 0
                    tar.addfile(info, io.BytesIO(r["files"][ext]))
    with open(os.path.join(out, "MANIFEST.tsv"), "w", encoding="utf-8") as f:
        f.write("key\tsource\twidth_px\theight_px\tunigrams\tselected_as\texpected\tnormalized_text\n")
        expected = expected_reasons(selected)
        for r, category in selected:
            f.write(f"{r['key']}\t{r['meta']['source']}\t{r['width']}\t{r['height']}\t"
                    f"{r['words']}\t{category}\t{expected[r['key']]}\t{r['text']}\n")
    return expected


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default="/work/real_corpus")
    ap.add_argument("--out", default="demo_data")
    args = ap.parse_args()
    selected = select(list(read_corpus(args.corpus)))
    expected = write(selected, args.out)
    print(len(selected), "pairs ->", args.out, dict(collections.Counter(c for _, c in selected)))
    print("expected under the paper's defaults (rare tokens aside):",
          dict(collections.Counter(expected.values())))


if __name__ == "__main__":
    main()
