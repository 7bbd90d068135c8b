"""Settings of the near-duplicate removal of evaluation images (ALIGN, Appendix A).

Every paper value is the default; each one is a flag of `align-curate` (via `add_dedup_flags`) and of
`align-dedup`. The pipeline owner wires the stage with:

    add_dedup_flags(parser)                      # while building the argparse parser
    dedup_config = DedupConfig.from_flags(args)  # after parsing
    FindNearDuplicatesOfEval(dedup_config.eval_image_globs, dedup_config)  # in the pipeline
"""
import argparse
import dataclasses
from typing import Optional, Sequence, Tuple

PIXEL_EMBEDDER = "pixel"  # weight-free default, see dedup/pixel_embedder.py


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
    # Paper, Appendix A: each image goes to its top-10 nearest clusters ...
    top_clusters_per_image: int = 10
    # ... and to every 3-combination of them: C(10, 3) = 120 buckets.
    clusters_per_bucket: int = 3
    # Paper, Appendix A: a pair sharing a bucket is a near-duplicate when cosine > 0.975. The value
    # belongs to the paper's embedder; calibrate yours with `align-dedup calibrate`.
    cosine_threshold: float = 0.975
    # Cheap first pass: a training image whose 64-bit pHash is within this Hamming distance of an
    # eval image's pHash is a near-duplicate whatever the embedder says; -1 turns it off.
    phash_max_distance_bits: int = 0
    # Extra eval-side views: centre crops keeping this fraction of each side (1.0 = whole image is
    # always indexed). Helps embedders that are not crop-invariant (the pixel one); eval side only.
    eval_crop_fractions: Tuple[float, ...] = ()
    batch_size: int = 64  # images per embedder call

    def __post_init__(self):
        # top_clusters_per_image > num_clusters is allowed: the index then uses all clusters.
        if not (0 < self.clusters_per_bucket <= self.top_clusters_per_image and self.num_clusters > 0):
            raise ValueError(
                "need 0 < clusters_per_bucket <= top_clusters_per_image and num_clusters > 0, got "
                f"{self.clusters_per_bucket}, {self.top_clusters_per_image}, {self.num_clusters}")
        if not -1.0 <= self.cosine_threshold <= 1.0:
            raise ValueError(f"cosine_threshold must be in [-1, 1], got {self.cosine_threshold}")
        if self.num_clusters ** self.clusters_per_bucket >= 2 ** 63:
            raise ValueError("num_clusters ** clusters_per_bucket must fit in a signed 64-bit bucket id")
        for fraction in self.eval_crop_fractions:
            if not 0 < fraction < 1:
                raise ValueError(f"eval crop fractions must be in (0, 1), got {fraction}")

    @classmethod
    def from_flags(cls, args: argparse.Namespace) -> "DedupConfig":
        """Builds the config from a namespace parsed with a parser given to `add_dedup_flags`."""
        return cls(
            eval_image_globs=tuple(args.eval_images or ()),
            embedder=args.dedup_embedder,
            num_clusters=args.dedup_num_clusters,
            centroids_path=args.dedup_centroids,
            kmeans_sample_size=args.dedup_kmeans_sample_size,
            top_clusters_per_image=args.dedup_top_clusters,
            clusters_per_bucket=args.dedup_clusters_per_bucket,
            cosine_threshold=args.dedup_cosine_threshold,
            phash_max_distance_bits=args.dedup_phash_max_distance_bits,
            eval_crop_fractions=tuple(_fractions(args.dedup_eval_crop_fractions)),
            batch_size=args.dedup_batch_size,
        )

    @property
    def enabled(self) -> bool:
        return bool(self.eval_image_globs)


def _fractions(text: str) -> Sequence[float]:
    return [float(x) for x in text.split(",") if x.strip()] if text else []


def add_dedup_flags(parser: argparse.ArgumentParser) -> None:
    """Adds the near-duplicate flags (defaults: ALIGN Appendix A) to an argparse parser."""
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
    g.add_argument("--dedup_top_clusters", type=int, default=d.top_clusters_per_image,
                   help="nearest clusters per image (paper: 10)")
    g.add_argument("--dedup_clusters_per_bucket", type=int, default=d.clusters_per_bucket,
                   help="clusters per bucket, all combinations of the top ones (paper: 3)")
    g.add_argument("--dedup_cosine_threshold", type=float, default=d.cosine_threshold,
                   help="near-duplicate when cosine > this (paper: 0.975 for its embedder)")
    g.add_argument("--dedup_phash_max_distance_bits", type=int, default=d.phash_max_distance_bits,
                   help="pHash first pass: Hamming distance for a copy (-1: off)")
    g.add_argument("--dedup_eval_crop_fractions", default="",
                   help="extra eval-side centre-crop views, e.g. '0.9,0.8' (default: none)")
    g.add_argument("--dedup_batch_size", type=int, default=d.batch_size)
