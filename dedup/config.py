"""Settings of the near-duplicate removal of evaluation images (ALIGN, Appendix A).

Every setting is a flag of `align-curate` (via `add_dedup_flags`) and of `align-dedup`. The paper's
values are the defaults of the search (4K clusters, top 10, buckets of 3); the decision defaults
(cosine threshold, eval views, aligned check) are those of the weight-free pixel embedder, measured
on the tune split of the copy-detection benchmark (docs/DEDUP.md, "Embedders"). A calibration file
(`align-dedup calibrate --output FILE`) carries the threshold and view settings that go with an
embedder: `--dedup_calibration FILE`. The pipeline owner wires the stage with:

    add_dedup_flags(parser)                      # while building the argparse parser
    dedup_config = DedupConfig.from_flags(args)  # after parsing
    FindNearDuplicatesOfEval(dedup_config.eval_image_globs, dedup_config)  # in the pipeline
"""
import argparse
import dataclasses
import datetime
import hashlib
import json
from typing import Optional, Sequence, Tuple

PIXEL_EMBEDDER = "pixel"  # weight-free default, see dedup/pixel_embedder.py
KMEANS_FITS = ("sample", "all")  # DedupConfig.kmeans_fit
PAPER_COSINE_THRESHOLD = 0.975  # Appendix A, for the paper's embedder
CALIBRATION_FORMAT = "align-dedup-calibration/1"

# Defaults of the weight-free path, chosen on the tune split (docs/DEDUP.md, "Embedders"):
# pixel embedder on trimmed images, 16 offset-crop views per eval image (each side cut by 0 or 7 %),
# a training image's best 3 eval images whose coarse cosine is above 0.7 re-scored by the aligned
# colour check, a near-duplicate when the best aligned score is above 0.98. (One candidate above
# 0.85 found 0.92 of ordinary copies on tune without the star-polygon series; three above 0.7 find
# 0.966 at the same false drops: in a corpus of look-alikes a copy's own original is often not its
# best coarse match. docs/DEDUP.md, "Three candidates".)
DEFAULT_COSINE_THRESHOLD = 0.98
DEFAULT_EVAL_VIEW_CUT_FRACTIONS = (0.07,)
DEFAULT_EVAL_VIEW_MIRROR = False
DEFAULT_VERIFY_CANDIDATES_ABOVE = 0.7
DEFAULT_VERIFY_MAX_CANDIDATES = 3
# The aligned check's local cap (pixel_embedder.aligned_score): off. On the test split, weight 2
# took the false drops outside the same drawing and its series from 4.0 to 2.8 per 1,000 (all
# 6,429 unrelated images) and ordinary copies 0.855 -> 0.853, but an overlay is a difference in
# one place too: text overlays 0.44 -> 0.35, emoji overlays 0.29 -> 0.10 (docs/DEDUP.md, "Where
# the difference lies"; docs/BENCHMARKS.md, "AFTER, fourth round").
DEFAULT_VERIFY_LOCAL_WEIGHT = 0.0

# Settings a calibration file fixes (with the flag that would set each one).
CALIBRATED_FLAGS = {
    "cosine_threshold": "--dedup_cosine_threshold",
    "eval_view_cut_fractions": "--dedup_eval_view_cut_fractions",
    "eval_view_mirror": "--dedup_eval_view_mirror",
    "eval_crop_fractions": "--dedup_eval_crop_fractions",
    "verify_candidates_above": "--dedup_verify_candidates_above",
    "verify_max_candidates": "--dedup_verify_max_candidates",
    "verify_local_weight": "--dedup_verify_local_weight",
    "savedmodel_trim_borders": "--dedup_savedmodel_trim_borders",
}


class DedupFlagError(ValueError):
    """A configuration mistake in the near-duplicate flags (conflicting flags, wrong calibration)."""


@dataclasses.dataclass(frozen=True)
class DedupConfig:
    # Eval (index) side: globs of image folder trees, webdataset .tar shards or TFRecords of schemas/.
    eval_image_globs: Tuple[str, ...] = ()
    # "pixel" (weight-free) or the path of a TF SavedModel with signature `embed_image`
    # (images tf.string [None] -> {"embedding": float32 [None, D]}), e.g. the trainer's export.
    embedder: str = PIXEL_EMBEDDER
    savedmodel_signature: str = "embed_image"
    # Paper, Appendix A: k-means with 4K clusters on the embedding model's training images.
    num_clusters: int = 4096
    # Path of saved centroids (.npy from `align-dedup fit-centroids`); None: fit on a sample in-pipeline.
    centroids_path: Optional[str] = None
    kmeans_sample_size: int = 100_000  # images used to fit k-means when no centroids are given
    kmeans_iterations: int = 20
    # Paper, Appendix A: k-means "based on all training images". "sample": faiss on
    # kmeans_sample_size training images, in one worker (the default: cheap, and the buckets only
    # need roughly even clusters); "all": that sample fit refined by kmeans_all_iterations Lloyd
    # passes over every training image, as Beam combines (dedup/kmeans_beam.py; about 147 CPU
    # s per million vectors per pass at K=4096, D=128, docs/BENCHMARKS.md).
    kmeans_fit: str = "sample"
    kmeans_all_iterations: int = 10
    # Paper, Appendix A: each image goes to its top-10 nearest clusters ...
    top_clusters_per_image: int = 10
    # ... and to every 3-combination of them: C(10, 3) = 120 buckets.
    clusters_per_bucket: int = 3
    # A pair is a near-duplicate when its cosine > this. With the pixel embedder and the aligned
    # check on, the cosine is the aligned score (pixel_embedder.aligned_score); otherwise the
    # embedder's (paper, Appendix A: 0.975 for the paper's embedder; calibrate yours with
    # `align-dedup calibrate`).
    cosine_threshold: float = DEFAULT_COSINE_THRESHOLD
    # Cheap first pass: a training image whose 64-bit pHash is within this Hamming distance of an
    # eval image's pHash is a near-duplicate whatever the embedder says; -1 turns it off.
    phash_max_distance_bits: int = 0
    # Eval-side views (eval side only; beam_stage.eval_views). Offset crops: each of the four sides
    # is cut by 0 or by each of these fractions of the side, independently: (1 + n)^4 views, the
    # whole image included (16 for one fraction). With the pixel embedder the crops are taken of
    # the image without its uniform margins (images.trim_uniform_borders), as it embeds them.
    eval_view_cut_fractions: Tuple[float, ...] = DEFAULT_EVAL_VIEW_CUT_FRACTIONS
    # One more view: the mirror image (left-right) of the whole image.
    eval_view_mirror: bool = DEFAULT_EVAL_VIEW_MIRROR
    # Extra centre-crop views keeping this fraction of each side (older option; off by default).
    eval_crop_fractions: Tuple[float, ...] = ()
    # Aligned check (pixel embedder only): a training image's best `verify_max_candidates` eval
    # images whose coarse cosine (max over views) is above `verify_candidates_above` are re-scored
    # by pixel_embedder.aligned_score; that score decides against cosine_threshold. 0 candidates:
    # off (the coarse cosine decides, as with a SavedModel).
    verify_candidates_above: float = DEFAULT_VERIFY_CANDIDATES_ABOVE
    verify_max_candidates: int = DEFAULT_VERIFY_MAX_CANDIDATES
    # > 0: the aligned score is min(aligned cosine, 1 - this x the squared difference of the
    # thumbnails in their worst 12 px window): a precision setting against variants of a drawing
    # (a wink for a smile) that also rejects copies with an overlay. 0: the aligned cosine decides.
    verify_local_weight: float = DEFAULT_VERIFY_LOCAL_WEIGHT
    # A SavedModel embedder gets both sides without their uniform margins (images.content_box,
    # the eval views cut from the trimmed image), as the pixel embedder always has them. Off by
    # default: a threshold belongs to the inputs it was calibrated on. With the project's copy
    # embedder it lifts bordered copies 0.45 -> 0.85 and 20 % crops ~0.1 (docs/DEDUP.md).
    savedmodel_trim_borders: bool = False
    batch_size: int = 64  # images per embedder call
    # Where the threshold and views came from (stats, logs): "defaults of the pixel embedder",
    # "flags", or "calibration FILE (...)".
    threshold_source: str = "defaults"

    def __post_init__(self):
        # top_clusters_per_image > num_clusters is allowed: the index then uses all clusters.
        if not (0 < self.clusters_per_bucket <= self.top_clusters_per_image and self.num_clusters > 0):
            raise ValueError(
                "need 0 < clusters_per_bucket <= top_clusters_per_image and num_clusters > 0, got "
                f"{self.clusters_per_bucket}, {self.top_clusters_per_image}, {self.num_clusters}")
        if self.kmeans_fit not in KMEANS_FITS or self.kmeans_all_iterations < 0:
            raise ValueError(f"need kmeans_fit in {KMEANS_FITS} and kmeans_all_iterations >= 0, "
                             f"got {self.kmeans_fit!r}, {self.kmeans_all_iterations}")
        if not -1.0 <= self.cosine_threshold <= 1.0:
            raise ValueError(f"cosine_threshold must be in [-1, 1], got {self.cosine_threshold}")
        if self.num_clusters ** self.clusters_per_bucket >= 2 ** 63:
            raise ValueError("num_clusters ** clusters_per_bucket must fit in a signed 64-bit bucket id")
        for fraction in self.eval_crop_fractions:
            if not 0 < fraction < 1:
                raise ValueError(f"eval crop fractions must be in (0, 1), got {fraction}")
        for fraction in self.eval_view_cut_fractions:
            if not 0 < fraction < 0.5:
                raise ValueError(f"eval view cut fractions must be in (0, 0.5), got {fraction}")
        if self.verify_max_candidates < 0 or not -1.0 <= self.verify_candidates_above <= 1.0:
            raise ValueError("need verify_max_candidates >= 0 and verify_candidates_above in [-1, 1]")
        if self.verify_local_weight < 0:
            raise ValueError(f"verify_local_weight must be >= 0, got {self.verify_local_weight}")

    @property
    def verifies(self) -> bool:
        """Whether the aligned check decides (pixel embedder with verify_max_candidates > 0)."""
        return self.embedder == PIXEL_EMBEDDER and self.verify_max_candidates > 0

    @property
    def search_threshold(self) -> float:
        """The cosine the bucketed search keeps pairs above: the candidates' one when verifying."""
        return self.verify_candidates_above if self.verifies else self.cosine_threshold

    @classmethod
    def from_flags(cls, args: argparse.Namespace) -> "DedupConfig":
        """Builds the config from a namespace parsed with a parser given to `add_dedup_flags`.

        With --dedup_calibration FILE the threshold, views and aligned-check settings come from
        the file; giving any of their flags too is a DedupFlagError, and so is a file made for
        another embedder than --dedup_embedder."""
        explicit = {name: getattr(args, flag[2:]) for name, flag in CALIBRATED_FLAGS.items()
                    if getattr(args, flag[2:], None) is not None}
        if "eval_view_cut_fractions" in explicit:
            explicit["eval_view_cut_fractions"] = tuple(_fractions(explicit["eval_view_cut_fractions"]))
        if "eval_crop_fractions" in explicit:
            explicit["eval_crop_fractions"] = tuple(_fractions(explicit["eval_crop_fractions"]))
        common = dict(
            eval_image_globs=tuple(args.eval_images or ()),
            embedder=args.dedup_embedder,
            num_clusters=args.dedup_num_clusters,
            centroids_path=args.dedup_centroids,
            kmeans_sample_size=args.dedup_kmeans_sample_size,
            kmeans_fit=getattr(args, "dedup_kmeans_fit", "sample"),
            kmeans_all_iterations=getattr(args, "dedup_kmeans_all_iterations", 10),
            top_clusters_per_image=args.dedup_top_clusters,
            clusters_per_bucket=args.dedup_clusters_per_bucket,
            phash_max_distance_bits=args.dedup_phash_max_distance_bits,
            batch_size=args.dedup_batch_size,
        )
        calibration_path = getattr(args, "dedup_calibration", None)
        if not calibration_path:
            source = "flags" if "cosine_threshold" in explicit else "defaults"
            return cls(**common, **explicit, threshold_source=source)
        if explicit:
            flags = ", ".join(CALIBRATED_FLAGS[name] for name in explicit)
            raise DedupFlagError(
                f"--dedup_calibration {calibration_path} sets the threshold and the eval views; "
                f"do not also give {flags} (drop them, or drop --dedup_calibration and set "
                "everything by flags)")
        calibration = read_calibration(calibration_path)
        check_calibration_embedder(calibration, cls(**common), calibration_path)
        return cls(**common, **calibrated_settings(calibration),
                   threshold_source=calibration_note(calibration, calibration_path))

    @property
    def enabled(self) -> bool:
        return bool(self.eval_image_globs)


def _fractions(text: str) -> Sequence[float]:
    return [float(x) for x in text.split(",") if x.strip()] if text else []


def _fractions_text(fractions: Sequence[float]) -> str:
    return ",".join(f"{f:g}" for f in fractions)


def add_dedup_flags(parser: argparse.ArgumentParser) -> None:
    """Adds the near-duplicate flags to an argparse parser (search defaults: ALIGN Appendix A)."""
    d = DedupConfig()
    g = parser.add_argument_group("near-duplicates of evaluation images (ALIGN Appendix A)")
    g.add_argument("--eval_images", action="append", default=[], metavar="GLOB",
                   help="evaluation images to remove near-duplicates of (repeatable): image folder "
                        "trees, webdataset .tar shards or TFRecords of schemas/; none: stage off")
    g.add_argument("--dedup_embedder", default=d.embedder,
                   help="'pixel' (weight-free) or a TF SavedModel dir with signature embed_image")
    g.add_argument("--dedup_num_clusters", type=int, default=d.num_clusters,
                   help="k-means clusters (paper: 4096)")
    g.add_argument("--dedup_centroids", default=None,
                   help="centroids .npy from `align-dedup fit-centroids` (default: fit on a sample)")
    g.add_argument("--dedup_kmeans_sample_size", type=int, default=d.kmeans_sample_size)
    g.add_argument("--dedup_kmeans_fit", choices=KMEANS_FITS, default=d.kmeans_fit,
                   help="without --dedup_centroids: 'sample' fits k-means on "
                        "--dedup_kmeans_sample_size training images; 'all' refines that fit with "
                        "--dedup_kmeans_all_iterations passes over every training image (paper: "
                        "'based on all training images')")
    g.add_argument("--dedup_kmeans_all_iterations", type=int, default=d.kmeans_all_iterations,
                   help="--dedup_kmeans_fit all: Lloyd passes over all training images")
    g.add_argument("--dedup_top_clusters", type=int, default=d.top_clusters_per_image,
                   help="nearest clusters per image (paper: 10)")
    g.add_argument("--dedup_clusters_per_bucket", type=int, default=d.clusters_per_bucket,
                   help="clusters per bucket, all combinations of the top ones (paper: 3)")
    g.add_argument("--dedup_calibration", default=None, metavar="FILE",
                   help="calibration file of `align-dedup calibrate --output FILE`: sets the "
                        "threshold, eval views and aligned check made for the embedder (which "
                        "must be --dedup_embedder); do not combine with their flags")
    g.add_argument("--dedup_cosine_threshold", type=float, default=None,
                   help=f"near-duplicate when cosine > this (default {d.cosine_threshold}: the "
                        "aligned score of the pixel embedder, tune split; the paper's 0.975 is "
                        "for its embedder: calibrate a SavedModel)")
    g.add_argument("--dedup_phash_max_distance_bits", type=int, default=d.phash_max_distance_bits,
                   help="pHash first pass: Hamming distance for a copy (-1: off)")
    g.add_argument("--dedup_eval_view_cut_fractions", default=None, metavar="F[,F...]",
                   help="eval-side offset-crop views: each side cut by 0 or each F, independently "
                        f"((1+n)^4 views; default '{_fractions_text(d.eval_view_cut_fractions)}' = "
                        "16 views; '' = the whole image only)")
    g.add_argument("--dedup_eval_view_mirror", default=None, action=argparse.BooleanOptionalAction,
                   help=f"also index the mirror image (default {d.eval_view_mirror})")
    g.add_argument("--dedup_eval_crop_fractions", default=None,
                   help="extra eval-side centre-crop views, e.g. '0.9,0.8' (default: none)")
    g.add_argument("--dedup_verify_candidates_above", type=float, default=None,
                   help="pixel embedder: re-score pairs whose coarse cosine is above this with the "
                        f"aligned check (default {d.verify_candidates_above})")
    g.add_argument("--dedup_verify_max_candidates", type=int, default=None,
                   help="pixel embedder: eval images re-scored per training image, best coarse "
                        f"first (default {d.verify_max_candidates}; 0: no aligned check)")
    g.add_argument("--dedup_verify_local_weight", type=float, default=None,
                   help="pixel embedder: cap the aligned score at 1 - W x the thumbnails' squared "
                        "difference in their worst 12 px window; fewer variants of a drawing "
                        "dropped, fewer copies with an overlay found (default "
                        f"{d.verify_local_weight:g}: off; 2 was measured)")
    g.add_argument("--dedup_savedmodel_trim_borders", default=None,
                   action=argparse.BooleanOptionalAction,
                   help="give a SavedModel embedder images without their uniform margins, both "
                        f"sides (default {d.savedmodel_trim_borders}; the pixel embedder always trims)")
    g.add_argument("--dedup_batch_size", type=int, default=d.batch_size)


# ----------------------------------------------------------------------------------------------
# Calibration files (written by `align-dedup calibrate --output FILE`, read by --dedup_calibration)


def embedder_identity(config: DedupConfig) -> dict:
    """What identifies the embedder a threshold belongs to: "pixel" and its parameters, or the
    SavedModel path, signature and the SHA-256 of its saved_model.pb."""
    if config.embedder == PIXEL_EMBEDDER:
        from dedup.pixel_embedder import PixelEmbedder

        return {"id": PIXEL_EMBEDDER, "parameters": PixelEmbedder().parameters}
    return {"id": "savedmodel", "path": config.embedder, "signature": config.savedmodel_signature,
            "saved_model_pb_sha256": _saved_model_sha256(config.embedder)}


def _saved_model_sha256(model_dir: str) -> str:
    from apache_beam.io.filesystems import FileSystems

    path = FileSystems.join(model_dir, "saved_model.pb")
    try:
        with FileSystems.open(path) as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    except Exception as error:  # noqa: BLE001 - any filesystem: report the path
        raise DedupFlagError(f"cannot read {path} to fingerprint the SavedModel: {error}") from error


def _describe(identity: dict) -> str:
    if identity.get("id") == PIXEL_EMBEDDER:
        return f"pixel {json.dumps(identity.get('parameters'), sort_keys=True)}"
    return (f"SavedModel {identity.get('path')} (signature {identity.get('signature')}, "
            f"saved_model.pb sha256 {str(identity.get('saved_model_pb_sha256'))[:12]}...)")


def same_embedder(a: dict, b: dict) -> bool:
    """Pixel: same parameters. SavedModel: same saved_model.pb and signature (a moved copy is the
    same model; a retrained one at the same path is not)."""
    if a.get("id") != b.get("id"):
        return False
    if a["id"] == PIXEL_EMBEDDER:
        return a.get("parameters") == b.get("parameters")
    return (a.get("saved_model_pb_sha256") == b.get("saved_model_pb_sha256")
            and a.get("signature") == b.get("signature"))


def calibration_record(config: DedupConfig, chosen_by: dict, measured: dict, command: str,
                       images: int) -> dict:
    """The calibration file's content for `config` (whose cosine_threshold is the chosen one)."""
    return {
        "format": CALIBRATION_FORMAT,
        "embedder": embedder_identity(config),
        "eval_views": {"cut_fractions": list(config.eval_view_cut_fractions),
                       "mirror": config.eval_view_mirror,
                       "centre_crop_fractions": list(config.eval_crop_fractions)},
        "inputs": {"savedmodel_trim_borders": config.savedmodel_trim_borders},
        "aligned_check": {"on": config.verifies,
                          "candidates_above": config.verify_candidates_above,
                          "max_candidates": config.verify_max_candidates,
                          "local_weight": config.verify_local_weight},
        "cosine_threshold": config.cosine_threshold,
        "chosen_by": chosen_by,
        "measured": measured,
        "images": images,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
    }


def write_calibration(path: str, record: dict) -> None:
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.create(path) as handle:
        handle.write((json.dumps(record, indent=2) + "\n").encode("utf-8"))


def read_calibration(path: str) -> dict:
    from apache_beam.io.filesystems import FileSystems

    try:
        with FileSystems.open(path) as handle:
            record = json.loads(handle.read().decode("utf-8"))
    except Exception as error:  # noqa: BLE001 - missing file, bad JSON: one clear message
        raise DedupFlagError(f"--dedup_calibration {path}: cannot read it: {error}") from error
    if not isinstance(record, dict) or record.get("format") != CALIBRATION_FORMAT:
        raise DedupFlagError(f"--dedup_calibration {path}: not a calibration file of "
                             f"`align-dedup calibrate --output` (format {CALIBRATION_FORMAT})")
    return record


def check_calibration_embedder(calibration: dict, config: DedupConfig, path: str) -> None:
    """DedupFlagError naming both embedders when the file was made for another one."""
    made_for = calibration.get("embedder", {})
    configured = embedder_identity(config)
    if not same_embedder(made_for, configured):
        raise DedupFlagError(
            f"--dedup_calibration {path} was made for the embedder {_describe(made_for)}, but the "
            f"configured embedder is {_describe(configured)} (--dedup_embedder {config.embedder}): "
            "calibrate this embedder with `align-dedup calibrate --output FILE`")


def calibrated_settings(calibration: dict) -> dict:
    """DedupConfig fields set by a calibration file."""
    views, check = calibration["eval_views"], calibration["aligned_check"]
    return {"cosine_threshold": float(calibration["cosine_threshold"]),
            "eval_view_cut_fractions": tuple(float(f) for f in views["cut_fractions"]),
            "eval_view_mirror": bool(views["mirror"]),
            "eval_crop_fractions": tuple(float(f) for f in views.get("centre_crop_fractions", ())),
            "verify_candidates_above": float(check["candidates_above"]),
            "verify_max_candidates": int(check["max_candidates"]) if check.get("on", True) else 0,
            "verify_local_weight": float(check.get("local_weight", 0.0)),
            "savedmodel_trim_borders": bool(calibration.get("inputs", {}).get(
                "savedmodel_trim_borders", False))}


def calibration_note(calibration: dict, path: str) -> str:
    chosen = calibration.get("chosen_by", {})
    how = ", ".join(f"{k} {v}" for k, v in chosen.items())
    return f"calibration {path} ({how}; {calibration.get('date', 'undated')})"
