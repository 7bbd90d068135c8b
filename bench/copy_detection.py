"""Copy detection per augmentation family (issue #11), on the real corpus's held-out split.

Eval side: the originals of one split (bench/copy_detection_data.py: train 60 % / tune 20 % / test
20 %, by group), indexed the way the stage indexes them: dedup.beam_stage.eval_views gives each
image's views (full image + --dedup_eval_crop_fractions ...), embed_in_process embeds them, and an
image's score is the max cosine over its views. Training side, per family of dedup/augment.py: one
augmented copy of every original (seeded: copy i depends on seed, family, i only), stored as
JPEG q95 like the pipeline stores images. A (copy, original) pair matches as in the stage: cosine >
--dedup_cosine_threshold, or pHashes within --dedup_phash_max_distance_bits (stage first pass).
Search is exhaustive (matrix products), so bucket misses are not counted here; --end_to_end does.

Per family: recall (copies matching their own original), top-1 (own original has the highest
cosine), FPR over all (copy, different original) pairs, the same FPR without pairs of originals that
are really one drawing (same emoji group, or pHash distance <= 4 / identical 64 px pixels:
"filed twice"), and precision at --prevalence = p*R / (p*R + (1-p)*FPR without those), i.e. if that
fraction of the compared pairs were copies (as align-dedup calibrate states it). False drops: images
of the `train` split (never augmented: unrelated to every eval image) as the training side against
the same eval side; a false drop is one with any match, per 1,000 (also without filed-twice ones).

  nice .venv/bin/python bench/copy_detection.py --corpus /work/corpus --write_split /work/exp/copy_split
  nice .venv/bin/python bench/copy_detection.py --corpus /work/corpus --split test \
      [--embedder pixel|SAVEDMODEL_DIR] [--dedup_eval_crop_fractions 0.9,0.8] [--end_to_end] \
      [--exclude_captions gramastar]
"""
import argparse
import dataclasses
import inspect
import json
import os
import sys
import time

import numpy as np
from scipy.stats import binomtest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import copy_detection_data as data  # noqa: E402
from dedup import augment, beam_stage  # noqa: E402
from dedup.config import DedupConfig, add_dedup_flags  # noqa: E402
from dedup.calibrate import NOT_A_CANDIDATE  # noqa: E402
from dedup.embedders import embed_in_process  # noqa: E402
from dedup.images import encode_png  # noqa: E402

GROUPS = [("geometric", list(augment.GEOMETRIC)), ("photometric", list(augment.PHOTOMETRIC)),
          ("overlays", list(augment.OVERLAYS)), ("combos", ["combo2", "combo3"]),
          ("ordinary_copy", ["ordinary_copy"])]
SWEEP = (0.85, 0.9, 0.925, 0.95, 0.96, 0.97, 0.975, 0.98, 0.985, 0.99)


def stage_views(item, config):
    """The stage's own eval views (whatever beam_stage.eval_views takes: the config or fractions)."""
    first = list(inspect.signature(beam_stage.eval_views).parameters)[1]
    return beam_stage.eval_views(item, config if first == "config" else config.eval_crop_fractions)


class EvalSide:
    """Embedded views of the originals. score = the stage's decision score: the max cosine over
    an original's views, or, with the pixel embedder's aligned check on (config.verifies), as
    SearchEvalIndexFn decides: per training image, its best coarse candidates above
    verify_candidates_above (at most verify_max_candidates) are aligned (beam_stage.
    verify_candidates) and the best of them scores its aligned score (pixel_embedder.
    aligned_score); every other pair scores NOT_A_CANDIDATE (never a match). The pHash first
    pass is counted apart (phash_hits)."""

    def __init__(self, keys, images, config):
        owner, blobs, names = [], [], []
        self.config, self.keys = config, list(keys)
        self.full = [encode_png(image) for image in images]
        for i, item in enumerate(zip(keys, self.full)):
            for (_, view), view_bytes in stage_views(item, config):
                owner.append(i)
                names.append(view)
                blobs.append(view_bytes)
        self.vectors = embed_in_process(config, blobs)
        self.view_names = names
        self.starts = np.flatnonzero(np.r_[True, np.diff(owner) != 0])  # views are contiguous
        self.ends = np.r_[self.starts[1:], len(owner)]
        self.views = len(blobs)
        self.phashes = phashes(self.full) if config.phash_max_distance_bits >= 0 else None
        self.details = ({k: beam_stage.eval_detail_of(b, config) for k, b in zip(keys, self.full)}
                        if config.verifies else {})

    def scores(self, query_vectors, query_bytes=None):
        coarse = np.maximum.reduceat(query_vectors @ self.vectors.T, self.starts, axis=1)
        if not self.config.verifies:
            return coarse
        out = np.full(coarse.shape, NOT_A_CANDIDATE, np.float32)
        cap = self.config.verify_max_candidates
        for r in range(len(coarse)):
            above = np.flatnonzero(coarse[r] > self.config.verify_candidates_above)
            if not len(above):
                continue
            best_first = above[np.argsort(-coarse[r, above], kind="stable")][:cap]
            candidates = []
            for e in best_first:
                cosines = self.vectors[self.starts[e]:self.ends[e]] @ query_vectors[r]
                view = self.view_names[self.starts[e] + int(np.argmax(cosines))]
                candidates.append((self.keys[e], view, float(coarse[r, e])))
            verified = beam_stage.verify_candidates(query_bytes[r], candidates, self.details,
                                                    self.config)
            if verified is not None:
                out[r, _row_of(best_first, candidates, verified[0])] = verified[1]
        return out


def _row_of(rows, candidates, eval_key):
    """The eval row of the candidate the aligned check chose."""
    return int(next(r for r, c in zip(rows, candidates) if c[0] == eval_key))


def phashes(blobs):
    """(uint64 pHash, valid) as the stage computes them (beam_stage.safe_phash)."""
    values = [beam_stage.safe_phash(b) for b in blobs]
    return (np.array([v or 0 for v in values], np.uint64), np.array([v is not None for v in values]))


def phash_hits(query, side, bits):
    if side.phashes is None or query is None:
        return None
    distance = np.bitwise_count(query[0][:, None] ^ side.phashes[0][None, :])
    return (distance <= bits) & query[1][:, None] & side.phashes[1][None, :]


def pair_counts(scores, hits, same, thresholds):
    """Per threshold: positives found (diagonal) and false matches (off-diagonal), same-drawing apart."""
    off = ~np.eye(len(scores), dtype=bool)
    rows = []
    for t in thresholds:
        match = scores > t if hits is None else (scores > t) | hits
        rows.append({"threshold": t, "tp": int(match.diagonal().sum()), "fp": int((match & off).sum()),
                     "fp_same": int((match & off & same).sum())})
    return {"n": len(scores), "negatives": int(off.sum()), "negatives_same": int((off & same).sum()),
            "top1": int((scores.argmax(1) == np.arange(len(scores))).sum()), "sweep": rows}


def metrics(c, row, prevalence):
    recall = row["tp"] / c["n"]
    fpr_clean = (row["fp"] - row["fp_same"]) / max(1, c["negatives"] - c["negatives_same"])
    hit = prevalence * recall
    return {"recall": recall, "top1": c["top1"] / c["n"], "fpr": row["fp"] / max(1, c["negatives"]),
            "fpr_clean": fpr_clean, "fp_same": row["fp_same"],
            "precision": hit / (hit + (1 - prevalence) * fpr_clean) if hit + fpr_clean > 0 else None}


def interval(k: int, n: int, scale: float = 1.0, digits: int = 3) -> str:
    """The exact (Clopper-Pearson) 95 % interval of k of n, times scale, as "low-high": with ~2,000
    unrelated images a false-drop rate of a few per 1,000 rests on a handful of images."""
    if n == 0:
        return "-"
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=0.95, method="exact")
    return f"{scale * ci.low:.{digits}f}-{scale * ci.high:.{digits}f}"


def add_counts(parts):
    total = {k: sum(p[k] for p in parts) for k in ("n", "negatives", "negatives_same", "top1")}
    total["sweep"] = [{k: (rows[0][k] if k == "threshold" else sum(r[k] for r in rows)) for k in rows[0]}
                      for rows in zip(*(p["sweep"] for p in parts))]
    return total


def false_drops(side, config, images, same, same_caption, thresholds):
    """Unrelated images (never augmented) as the training side: dropped per 1,000. `same`: pairs
    that are one drawing filed twice; `same_caption`: pairs with one caption (a series)."""
    blobs = [data.jpeg_bytes(image) for image in images]
    scores = side.scores(embed_in_process(config, blobs), blobs)
    hits = phash_hits(phashes(blobs) if side.phashes is not None else None, side,
                      config.phash_max_distance_bits)
    rows = []
    for t in thresholds:
        match = scores > t if hits is None else (scores > t) | hits
        dropped, filed_twice = match.any(1), (match & same).any(1)
        via_phash = dropped & ~(scores > t).any(1)  # the pHash first pass alone dropped them
        related = (match & (same | same_caption)).any(1)  # filed twice or one series
        counts = {"dropped": int(dropped.sum()), "dropped_clean": int((dropped & ~filed_twice).sum()),
                  "dropped_unrelated": int((dropped & ~related).sum())}
        rows.append({"threshold": t, **counts, "filed_twice": int(filed_twice.sum()),
                     "via_phash_only": int(via_phash.sum()),
                     "same_caption": int((match & same_caption).any(1).sum()),
                     "per_1000": 1e3 * counts["dropped"] / len(images),
                     "per_1000_clean": 1e3 * counts["dropped_clean"] / len(images),
                     "per_1000_unrelated": 1e3 * counts["dropped_unrelated"] / len(images)})
    return {"images": len(images), "sweep": rows}


def excluded_captions(args):
    return sorted(set(args.exclude_captions.split(","))) if args.exclude_captions else []


def aligned_check_text(config) -> str:
    if not config.verifies:
        return "off"
    text = f"candidates above {config.verify_candidates_above}, best {config.verify_max_candidates}"
    if config.verify_local_weight:
        text += f", local weight {config.verify_local_weight:g}"
    return text


def measure(args, config, meta, splits):
    out = {"split": args.split, "embedder": config.embedder, "threshold": config.cosine_threshold,
           "eval_crop_fractions": list(config.eval_crop_fractions),
           "eval_view_cut_fractions": list(config.eval_view_cut_fractions),
           "aligned_check": aligned_check_text(config),
           "phash_max_distance_bits": config.phash_max_distance_bits, "prevalence": args.prevalence}
    thresholds = sorted(set(SWEEP) | {config.cosine_threshold})
    rng = np.random.default_rng(args.seed)
    out["excluded_captions"] = excluded_captions(args)
    keys = [k for k in sorted(meta) if splits[k] == args.split]
    keys = list(rng.permutation(keys)[:args.images_per_family or None])
    keys, originals = data.load_originals(args.corpus, meta, sorted(keys))
    start = time.time()
    side = EvalSide(keys, originals, config)
    groups = data.group_keys(meta)
    signatures = data.drawing_signatures(originals)
    same = data.same_drawing(signatures, signatures, args.same_drawing_phash_bits)
    group = np.array([groups[k] for k in keys])
    same |= group[:, None] == group[None, :]
    print(f"{args.split}: {len(keys)} originals, {side.views} eval views ({time.time() - start:.0f} s); "
          f"{int(same.sum() - len(keys)) // 2} pairs of originals are one drawing", flush=True)
    stickers = data.overlay_stickers(args.corpus, meta, splits)
    families = args.families.split(",") if args.families else augment.FAMILIES
    out["families"] = {}
    for family in families:
        start = time.time()
        copies = data.make_copies(originals, family, args.seed, stickers)
        scores = side.scores(embed_in_process(config, copies), copies)
        hits = phash_hits(phashes(copies) if side.phashes is not None else None, side,
                          config.phash_max_distance_bits)
        out["families"][family] = pair_counts(scores, hits, same, thresholds)
        m = metrics(out["families"][family], _at(out["families"][family], config), args.prevalence)
        print(f"  {family}: recall {m['recall']:.3f} FPR {m['fpr']:.2e} ({time.time() - start:.0f} s)",
              flush=True)
    unrelated = [k for k in sorted(meta) if splits[k] == "train"]
    unrelated = sorted(rng.permutation(unrelated)[:args.negatives])
    unrelated, unrelated_images = data.load_originals(args.corpus, meta, unrelated)
    same_u = data.same_drawing(data.drawing_signatures(unrelated_images), signatures,
                               args.same_drawing_phash_bits)
    captions = np.array([meta[k]["caption"] for k in keys])
    same_caption = np.array([meta[k]["caption"] for k in unrelated])[:, None] == captions[None, :]
    out["false_drops"] = false_drops(side, config, unrelated_images, same_u, same_caption, thresholds)
    return out


def _at(counts, config):
    return next(r for r in counts["sweep"] if r["threshold"] == config.cosine_threshold)


def _f(precision):
    return "-" if precision is None else f"{precision:.3f}"  # nothing found at all: undefined


def report(out, config):
    p = out["prevalence"]
    print(f"\nsplit {out['split']}, embedder {out['embedder']}, threshold {out['threshold']}, eval "
          f"cut views {out['eval_view_cut_fractions'] or 'none'}, centre-crop views "
          f"{out['eval_crop_fractions'] or 'none'}, aligned check {out['aligned_check']}, "
          f"pHash first pass <= "
          f"{out['phash_max_distance_bits']} bits; precision at {p:g} prevalence"
          + (f"; images captioned {out['excluded_captions']} left out" if out.get("excluded_captions")
             else "") + "\n")
    print("| group | family | copies | recall (95 % interval) | top-1 | FPR | FPR w/o filed twice | "
          f"FP pairs filed twice | precision@{p:g} |\n|---|---|---|---|---|---|---|---|---|")
    out["all_families"] = add_counts(list(out["families"].values()))
    fams = {**out["families"], "all": out["all_families"]}
    for group, names in GROUPS + [("all", ["all"])]:
        for name in names:
            if name not in fams:
                continue
            row, n = _at(fams[name], config), fams[name]["n"]
            m = metrics(fams[name], row, p)
            print(f"| {group} | {name} | {n} | {m['recall']:.3f} ({interval(row['tp'], n)}) | {m['top1']:.3f} | "
                  f"{m['fpr']:.2e} | {m['fpr_clean']:.2e} | {m['fp_same']} | {_f(m['precision'])} |")
    fd = out["false_drops"]
    r = next(r for r in fd["sweep"] if r["threshold"] == out["threshold"])
    print(f"\nfalse drops: {r['dropped']} of {fd['images']} unrelated train-split images = "
          f"{r['per_1000']:.1f} per 1,000 ({r['via_phash_only']} by the pHash first pass alone; "
          f"{r['filed_twice']} are the same drawing filed twice; "
          f"without them {r['per_1000_clean']:.1f} per 1,000; {r['same_caption']} matched an eval image "
          "with the same caption, i.e. one series such as OpenClipArt's 'gramastar' line drawings; "
          f"matching neither the same drawing nor one of its series: {r['per_1000_unrelated']:.1f} "
          "per 1,000)")
    n = fd["images"]
    print(f"95 % intervals per 1,000: all {interval(r['dropped'], n, 1e3, 1)}; w/o filed twice "
          f"{interval(r['dropped_clean'], n, 1e3, 1)}; w/o filed twice or series "
          f"{interval(r['dropped_unrelated'], n, 1e3, 1)}\n")
    print("| threshold | ordinary_copy recall | ordinary_copy FPR* | all recall | all FPR* | "
          f"all precision@{p:g} | false drops / 1,000 (w/o filed twice; w/o filed twice or series) |"
          "\n|---|---|---|---|---|---|---|")
    nan = {"recall": float("nan"), "fpr_clean": float("nan")}  # ordinary_copy left out by --families
    ordinary = fams.get("ordinary_copy")
    for i, d in enumerate(fd["sweep"]):
        o = metrics(ordinary, ordinary["sweep"][i], p) if ordinary else nan
        a = metrics(fams["all"], fams["all"]["sweep"][i], p)
        print(f"| {d['threshold']:g} | {o['recall']:.3f} | {o['fpr_clean']:.2e} | {a['recall']:.3f} | "
              f"{a['fpr_clean']:.2e} | {_f(a['precision'])} | "
              f"{d['per_1000']:.1f} ({d['per_1000_clean']:.1f}; {d['per_1000_unrelated']:.1f}) |")
    print("(* FPR without pairs of originals that are the same drawing filed twice)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="/work/corpus")
    parser.add_argument("--write_split", metavar="DIR", help="write DIR/{train,tune,test}/<key>.png and exit")
    parser.add_argument("--split", default="tune", choices=("tune", "test"))
    parser.add_argument("--embedder", default=None, help="shorthand for --dedup_embedder")
    parser.add_argument("--images_per_family", type=int, default=0, help="originals (0: the whole split)")
    parser.add_argument("--negatives", type=int, default=2000,
                        help="unrelated train-split images for the false-drop rate (FPR uses all pairs)")
    parser.add_argument("--prevalence", type=float, default=0.01)
    parser.add_argument("--families", default="", help="comma-separated subset of dedup.augment.FAMILIES")
    parser.add_argument("--same_drawing_phash_bits", type=int, default=data.SAME_DRAWING_PHASH_BITS,
                        help="two originals are one drawing filed twice within this pHash distance")
    parser.add_argument("--exclude_captions", default="",
                        help="comma-separated captions whose images are left out of the split and of "
                        "the unrelated images, e.g. 'gramastar' (1,375 star polygons, most of them "
                        "the same picture at 48 px)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output_json", default=None)
    parser.add_argument("--end_to_end", action="store_true", help="also run align-curate --eval_images")
    parser.add_argument("--e2e_eval", type=int, default=300, help="eval originals (half get a planted copy)")
    parser.add_argument("--e2e_unrelated", type=int, default=1000, help="unrelated train-split pairs")
    parser.add_argument("--e2e_dir", default=None, help="work folder (default /tmp/copy_detection_e2e_PID)")
    add_dedup_flags(parser)
    args = parser.parse_args(argv)
    meta = data.read_corpus(args.corpus)
    if args.write_split:
        print(data.write_split(args.corpus, meta, args.write_split))
        return 0
    excluded = excluded_captions(args)
    if excluded:  # a series left out on every side: eval originals, copies, unrelated images
        meta = {k: m for k, m in meta.items() if m["caption"] not in excluded}
    config = DedupConfig.from_flags(args)
    if args.embedder:
        config = dataclasses.replace(config, embedder=args.embedder)
    splits = data.assign_splits(meta)
    out = measure(args, config, meta, splits)
    report(out, config)
    if args.end_to_end:
        out["end_to_end"] = data.run_end_to_end(args, parser, meta, splits)
    if args.output_json:
        with open(args.output_json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
