"""Data side of bench/copy_detection.py: the corpus, its train/tune/test split, copies, duplicates.

The split (deterministic, no state): every image belongs to a group, and the group's split is
read from SHA-256(SPLIT_SALT + group key) as a number u in [0, 1): u < 0.6 `train` (the learned
embedder trains here), u < 0.8 `tune` (thresholds and defaults are tuned here), else `test`
(held out: every reported number). The group key is
  * Noto emoji: "emoji:" + near_duplicate_of_code, else "emoji:" + code, so the skin-tone
    variants of an emoji go with their base emoji and never straddle splits;
  * anything else: "key:" + key;
  * and byte-identical files (the corpus has 12 sets, 31 images) are merged into one group (the
    smallest key of the set), so no file is both trained on and tested on.
Copies are made from the "original" of an image: the corpus PNG decoded by the project's decoder
(alpha on white), its longer side capped at MAX_SIDE_PX (a few OpenClipArt PNGs are 1,500 px and
more; the cap bounds the cost, copies of web images are not bigger than that).
"""
import glob
import hashlib
import io
import json
import os
import shutil
import tarfile
import time
from collections import Counter
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from dedup import augment
from dedup.beam_stage import safe_phash
from dedup.images import encode_png, trim_uniform_borders
from schemas.image_decode import decode_rgb

SPLITS = ("train", "tune", "test")
SPLIT_BOUNDS = (0.6, 0.8)  # cumulative: train < 0.6 <= tune < 0.8 <= test
SPLIT_SALT = "align-copy-detection-split-v1:"
MAX_SIDE_PX = 512
# "The same drawing filed twice": two originals whose 64-bit pHashes differ by <= this many bits,
# as they are or without their uniform margins (the same drawing on another canvas size, or saved
# at another scale with other margins: "Homes Clipart" and "Lemon SVG theme" at 467 and 438 px),
# or whose 64x64 decodes are pixel-identical.
SAME_DRAWING_PHASH_BITS = 4


def read_corpus(corpus: str) -> Dict[str, dict]:
    """key -> the .json record of the webdataset shards (caption, url, source, code, sha256...)."""
    meta = {}
    for shard in sorted(glob.glob(os.path.join(corpus, "webdataset", "*.tar"))):
        with tarfile.open(shard) as tar:
            for member in tar:
                if member.name.endswith(".json"):
                    record = json.load(tar.extractfile(member))
                    meta[record["key"]] = record
    if not meta:
        raise SystemExit(f"no webdataset .json records under {corpus}/webdataset: build the corpus "
                         "with python3 /work/shared/corpus/build_real_corpus.py " + corpus)
    return meta


def group_keys(meta: Dict[str, dict]) -> Dict[str, str]:
    """key -> group key (see the module docstring)."""
    group = {}
    for key, record in meta.items():
        base = record.get("near_duplicate_of_code") or record.get("code")
        if record.get("source") == "noto-emoji" and base:
            group[key] = "emoji:" + base
        else:
            group[key] = "key:" + key
    # Merge groups that share a byte-identical file (union-find over group keys).
    parent: Dict[str, str] = {}

    def find(g):
        while parent.get(g, g) != g:
            g = parent[g]
        return g

    by_sha: Dict[str, List[str]] = {}
    for key, record in meta.items():
        by_sha.setdefault(record.get("sha256") or key, []).append(key)
    for keys in by_sha.values():
        roots = sorted({find(group[k]) for k in keys})
        for root in roots[1:]:
            parent[root] = roots[0]
    return {key: find(g) for key, g in group.items()}


def split_of_group(group: str) -> str:
    digest = hashlib.sha256((SPLIT_SALT + group).encode("utf-8")).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0 ** 64
    return SPLITS[int(np.searchsorted(SPLIT_BOUNDS, u, side="right"))]


def assign_splits(meta: Dict[str, dict]) -> Dict[str, str]:
    """key -> "train" | "tune" | "test"."""
    return {key: split_of_group(g) for key, g in group_keys(meta).items()}


def write_split(corpus: str, meta: Dict[str, dict], out_dir: str) -> Dict[str, int]:
    """DIR/{train,tune,test}/<key>.png (the corpus files, copied), DIR/split.json, DIR/README."""
    groups, splits = group_keys(meta), assign_splits(meta)
    counts = {s: 0 for s in SPLITS}
    for split in SPLITS:
        os.makedirs(os.path.join(out_dir, split), exist_ok=True)
    for key in sorted(meta):
        shutil.copyfile(os.path.join(corpus, meta[key]["url"]),
                        os.path.join(out_dir, splits[key], key + ".png"))
        counts[splits[key]] += 1
    with open(os.path.join(out_dir, "split.json"), "w") as f:
        json.dump({"corpus": os.path.abspath(corpus), "salt": SPLIT_SALT, "bounds": SPLIT_BOUNDS,
                   "counts": counts,
                   "keys": {k: {"split": splits[k], "group": groups[k]} for k in sorted(meta)}},
                  f, indent=0)
    with open(os.path.join(out_dir, "README"), "w") as f:
        f.write(f"""Copy-detection split of {os.path.abspath(corpus)} (bench/copy_detection_data.py).

train/ {counts['train']} images: the learned embedder trains here, e.g.
    align-dedup train-embedder --images '{os.path.abspath(out_dir)}/train/*.png' ...
tune/  {counts['tune']} images: thresholds and defaults are tuned here.
test/  {counts['test']} images: held out; every number reported by bench/copy_detection.py
       (--split test). Never train or tune on it.

Split of an image = SHA-256("{SPLIT_SALT}" + group key) read as u in [0, 1): u < 0.6 train,
u < 0.8 tune, else test. Group key: Noto emoji by base emoji (near_duplicate_of_code, else code:
skin-tone variants never straddle splits), anything else by its key; byte-identical files share a
group. split.json lists key -> split and group. Rebuild with:
    python bench/copy_detection.py --corpus {os.path.abspath(corpus)} --write_split {os.path.abspath(out_dir)}
""")
    return counts


def load_original(corpus: str, record: dict) -> Optional[Image.Image]:
    """The corpus image as RGB (alpha on white), longer side <= MAX_SIDE_PX; None if unreadable."""
    try:
        with open(os.path.join(corpus, record["url"]), "rb") as f:
            image = decode_rgb(f.read(), draft_side_px=None)
    except Exception:  # noqa: BLE001 - the few images over the decoder's pixel cap
        return None
    scale = MAX_SIDE_PX / max(image.size)
    if scale < 1:
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                             Image.Resampling.BICUBIC)
    return image


def load_originals(corpus: str, meta: Dict[str, dict],
                   keys: Sequence[str]) -> Tuple[List[str], List[Image.Image]]:
    kept, images = [], []
    for key in keys:
        image = load_original(corpus, meta[key])
        if image is not None:
            kept.append(key)
            images.append(image)
    return kept, images


def jpeg_bytes(image: Image.Image, quality: int = 95) -> bytes:
    """How copies enter the training side: JPEG q95, as the curation pipeline stores images."""
    out = io.BytesIO()
    image.convert("RGB").save(out, format="JPEG", quality=quality)
    return out.getvalue()


def overlay_stickers(corpus: str, meta: Dict[str, dict], splits: Dict[str, str],
                     count: int = 48) -> List[Image.Image]:
    """Emoji for the emoji_overlay family, from the train split only (never a test image)."""
    keys = sorted(k for k, r in meta.items() if r.get("source") == "noto-emoji" and splits[k] == "train")
    picked = np.random.default_rng(7).choice(keys, min(count, len(keys)), replace=False)
    return [Image.open(os.path.join(corpus, meta[str(k)]["url"])).convert("RGBA") for k in picked]


def make_copies(originals: Sequence[Image.Image], family: str, seed: int,
                stickers: Sequence[Image.Image]) -> List[bytes]:
    """One augmented copy per original, JPEG q95; copy i depends only on (seed, family, i)."""
    family_id = augment.FAMILIES.index(family)
    return [jpeg_bytes(augment.apply(image, family, np.random.default_rng([seed, family_id, i]), stickers))
            for i, image in enumerate(originals)]


Signatures = Tuple[np.ndarray, List[bytes], np.ndarray]


def drawing_signatures(images: Sequence[Image.Image]) -> Signatures:
    """(pHash per image as uint64, 64x64 RGB pixels per image, pHash of each image without its
    uniform margins) for same-drawing detection."""
    phashes = np.array([safe_phash(encode_png(image)) or 0 for image in images], dtype=np.uint64)
    pixels = [np.asarray(image.resize((64, 64), Image.Resampling.BILINEAR)).tobytes()
              for image in images]
    trimmed = np.array([safe_phash(encode_png(trim_uniform_borders(image))) or 0 for image in images],
                       dtype=np.uint64)
    return phashes, pixels, trimmed


def same_drawing(a: Signatures, b: Signatures, bits: int = SAME_DRAWING_PHASH_BITS) -> np.ndarray:
    """[len(a), len(b)] bool: pHash within `bits`, of the images or of the images without their
    margins, or identical 64 px pixels. On this corpus 4 bits also joins recolours (a green and a
    red arrow) and small icon variants: an upper bound."""
    close = np.bitwise_count(a[0][:, None] ^ b[0][None, :]) <= bits
    close |= np.bitwise_count(a[2][:, None] ^ b[2][None, :]) <= bits
    index: Dict[bytes, List[int]] = {}
    for j, p in enumerate(b[1]):
        index.setdefault(p, []).append(j)
    for i, p in enumerate(a[1]):
        close[i, index.get(p, [])] = True
    return close


# --- end to end: align-curate --eval_images on a planted webdataset -------------------------------

LOCAL_REASONS = ("image_too_small", "aspect_ratio", "too_few_words", "too_many_words")


def write_webdataset(path: str, pairs) -> None:
    """img2dataset layout: {key}.{ext}, {key}.txt, {key}.json per pair of (key, bytes, ext, caption)."""
    with tarfile.open(path, "w") as tar:
        for key, blob, ext, caption in pairs:
            record = json.dumps({"key": key, "caption": caption}).encode()
            members = ((f"{key}.{ext}", blob), (f"{key}.txt", caption.encode()), (f"{key}.json", record))
            for name, payload in members:
                info = tarfile.TarInfo(name)
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))


def dedup_argv(parser, args) -> List[str]:
    """The --dedup_* flags given to the bench, forwarded to align-curate (those others add too)."""
    argv = []
    for action in parser._actions:  # noqa: SLF001 - argparse has no public list of actions
        flag = next((o for o in action.option_strings if o.startswith("--dedup_")), None)
        value = getattr(args, action.dest, None)
        if flag and value != action.default:
            argv += [flag] if value is True else [flag, str(value)]
    if args.embedder:
        argv += ["--dedup_embedder", args.embedder]
    return argv


def _pick(corpus, meta, keys, count, min_side):
    """The first `count` keys whose originals decode with shorter side >= min_side, aspect < 2.5:
    they pass align-curate's local filters (--min_image_side_px 63) even after ordinary_copy."""
    picked = []
    for key in keys:
        image = load_original(corpus, meta[key])
        if image is not None and min(image.size) >= min_side and max(image.size) < 2.5 * min(image.size):
            picked.append((key, image))
            if len(picked) == count:
                break
    return picked


def _stem(eval_key: str) -> str:
    return os.path.basename(eval_key).split(".")[0]


def run_end_to_end(args, parser, meta, splits) -> dict:
    """Plants ordinary_copy copies of half the eval originals among unrelated train-split pairs."""
    from pipeline.curate import run as curate

    rng = np.random.default_rng(args.seed + 1)
    work = args.e2e_dir or os.path.join("/tmp", f"copy_detection_e2e_{os.getpid()}")
    for sub in ("eval", "input"):
        os.makedirs(os.path.join(work, sub), exist_ok=True)
    evals = _pick(args.corpus, meta, rng.permutation([k for k in sorted(meta) if splits[k] == args.split]),
                  args.e2e_eval, 80)  # ordinary_copy keeps >= 0.8 of a side: >= 64 px
    unrelated = _pick(args.corpus, meta, rng.permutation([k for k in sorted(meta) if splits[k] == "train"]),
                      args.e2e_unrelated, 64)
    for key, image in evals:
        with open(os.path.join(work, "eval", key + ".png"), "wb") as f:
            f.write(encode_png(image))
    planted = evals[:len(evals) // 2]
    pairs = [(f"u{key}", open(os.path.join(args.corpus, meta[key]["url"]), "rb").read(), "png",
              meta[key]["caption"]) for key, _ in unrelated]
    family_id = augment.FAMILIES.index("ordinary_copy")  # 10**6 + i: other draws than the bench's copies
    copies = [augment.apply(image, "ordinary_copy", np.random.default_rng([args.seed, family_id, 10 ** 6 + i]))
              for i, (_, image) in enumerate(planted)]
    pairs += [(f"c{key}", jpeg_bytes(copy), "jpg", f"planted copy number {i} of an evaluation drawing")
              for i, ((key, _), copy) in enumerate(zip(planted, copies))]
    pairs = [pairs[i] for i in rng.permutation(len(pairs))]
    write_webdataset(os.path.join(work, "input", "00000.tar"), pairs)
    argv = ["--input", os.path.join(work, "input", "*.tar"), "--input_format", "webdataset",
            "--output_dir", os.path.join(work, "curated"), "--min_image_side_px", "63", "--min_words", "1",
            "--eval_images", os.path.join(work, "eval"), "--runner=DirectRunner"] + dedup_argv(parser, args)
    print("end to end: align-curate " + " ".join(argv), flush=True)
    start = time.time()
    stats = curate(argv)
    seconds = time.time() - start
    outcomes = {}
    for name in sorted(glob.glob(os.path.join(work, "curated", "outcomes", "*.jsonl"))):
        for line in open(name):
            row = json.loads(line)
            outcomes[row["key"]] = row.get("reason")
    flagged = {}
    with open(os.path.join(work, "curated", "near_duplicates.jsonl")) as f:
        for line in f:
            row = json.loads(line)
            flagged[row["key"]] = row["eval_key"]
    copies = [f"c{k}" for k, _ in planted]
    others = [f"u{k}" for k, _ in unrelated]
    searched = [k for k in others if outcomes.get(k) not in LOCAL_REASONS]
    # Flagged unrelated images that are the same drawing filed twice as the eval image they matched.
    images = {**{f"u{k}": im for k, im in unrelated}, **{k: im for k, im in evals}}
    twice = [k for k in searched if k in flagged and same_drawing(
        drawing_signatures([images[k]]), drawing_signatures([images[_stem(flagged[k])]]))[0, 0]]
    result = {
        "eval_images": len(evals), "planted": len(copies), "unrelated": len(others), "seconds": seconds,
        "copies_flagged": sum(k in flagged for k in copies),
        "copies_flagged_own_original": sum(_stem(flagged.get(k, "")) == k[1:] for k in copies),
        "copies_dropped_near_duplicate": sum(outcomes.get(k) == "near_duplicate_of_eval" for k in copies),
        "copies_other_reasons": dict(Counter(outcomes.get(k) or "kept" for k in copies
                                             if outcomes.get(k) != "near_duplicate_of_eval")),
        "unrelated_searched": len(searched),
        "unrelated_flagged": sum(k in flagged for k in searched), "unrelated_flagged_filed_twice": len(twice),
        "dropped_by_reason": dict(Counter(outcomes.values())), "stats_dropped": stats["dropped"],
        "workdir": work}
    result["unrelated_flagged_per_1000"] = 1e3 * result["unrelated_flagged"] / max(1, len(searched))
    print(f"end to end ({seconds:.0f} s, {work}): planted copies flagged near_duplicate_of_eval "
          f"{result['copies_flagged']}/{len(copies)} (own original {result['copies_flagged_own_original']}; "
          f"dropped with that reason {result['copies_dropped_near_duplicate']}; other outcomes "
          f"{result['copies_other_reasons']}); unrelated flagged {result['unrelated_flagged']} of "
          f"{len(searched)} searched = {result['unrelated_flagged_per_1000']:.1f} per 1,000 "
          f"({len(twice)} the "
          f"same drawing filed twice as their eval image); "
          f"stats.json: {stats['input_pairs']} in, {stats['kept_pairs']} kept, dropped {stats['dropped']}")
    return result
