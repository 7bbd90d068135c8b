"""Flags of `align-curate`: every paper threshold with the paper's default; the rest go to Beam.

`parse_args(argv)` splits the command line: the flags below make a `CurationConfig`; every other
flag (`--runner`, `--project`, `--region`, `--temp_location`, `--setup_file`, `--num_workers`,
`--direct_running_mode`, ...) is passed untouched to Beam's PipelineOptions.
"""
import argparse
import dataclasses
import typing
from typing import List, Optional, Tuple

from pipeline import image_filters, image_io, text_filters
from pipeline.readers import INPUT_FORMATS


@dataclasses.dataclass(frozen=True)
class CurationConfig:
    input: str = ""
    input_format: str = "webdataset"
    output_dir: str = ""
    # Paper section 3, image-based filtering.
    min_image_side_px: int = image_filters.MIN_IMAGE_SIDE_PX  # keep shorter side > 200 px
    max_aspect_ratio: float = image_filters.MAX_ASPECT_RATIO  # keep longer/shorter < 3
    max_alt_texts_per_image: int = 1000  # drop images with > 1000 associated alt-texts
    # Paper section 3, "we remove pornographic images": pluggable scorer (the paper names none).
    unsafe_model_path: Optional[str] = None  # TF SavedModel, run with Beam RunInference
    unsafe_score_field: Optional[str] = None  # or an existing score column, e.g. LAION's punsafe
    unsafe_threshold: float = 0.5  # score >= threshold is unsafe (not from the paper; LAION-style)
    unsafe_model_input_px: int = 224
    unsafe_score_index: int = -1  # column of a [batch, k] output holding the unsafe probability
    # Paper section 3, text-based filtering.
    max_images_per_alt_text: int = 10  # drop alt-texts shared by > 10 images
    min_words: int = text_filters.MIN_WORDS  # drop < 3 unigrams
    max_words: int = text_filters.MAX_WORDS  # drop > 20 unigrams
    top_n_tokens: int = 100_000_000  # drop texts with a unigram/bigram outside the top 100M
    vocab_size: int = 100_000  # paper 4.1: "a wordpiece vocabulary of 100k"
    vocab_min_piece_count: int = 10  # learner's lowest piece frequency (tensorflow_text default)
    # Output images (not paper filters).
    stored_shorter_side_px: int = 346  # paper 4.1 trains on 346 px resizes: store no larger
    jpeg_quality: int = 90
    max_image_pixels: int = image_io.DEFAULT_MAX_IMAGE_PIXELS  # decompression-bomb cap
    # Input columns and output layout.
    text_column: str = "caption"
    image_column: Optional[str] = None
    num_shards: int = 0  # 0: the runner picks
    report_samples_per_reason: int = 12
    write_outcomes: bool = True  # outcomes/*.jsonl: key, status, reason of every input pair


_HELP = {
    "min_image_side_px": "keep images whose shorter side is strictly larger (paper 3: 200)",
    "max_aspect_ratio": "keep images whose longer/shorter side is strictly smaller (paper 3: 3)",
    "max_alt_texts_per_image": "drop images with more alt-texts than this (paper 3: 1000)",
    "unsafe_model_path": "TF SavedModel scoring images as unsafe (serving_default: float32 "
                         "[batch, px, px, 3] in [0, 1] -> [batch] or [batch, k] scores)",
    "unsafe_score_field": "read the unsafe score from this input column/json field (e.g. punsafe)",
    "unsafe_threshold": "a score >= this is unsafe",
    "max_images_per_alt_text": "drop alt-texts shared by more images than this (paper 3: 10)",
    "min_words": "drop alt-texts with fewer unigrams (paper 3: 3)",
    "max_words": "drop alt-texts with more unigrams (paper 3: 20)",
    "top_n_tokens": "drop alt-texts with a unigram/bigram outside the N most frequent "
                    "(paper 3: 100 million)",
    "vocab_size": "WordPiece vocabulary size (paper 4.1: 100k)",
    "vocab_min_piece_count": "lowest frequency of a learned word piece; lower it on small corpora, "
                             "where it caps the achieved vocabulary size",
    "stored_shorter_side_px": "resize stored JPEGs so the shorter side is at most this",
    "max_image_pixels": "images announcing more pixels are decompression_bomb errors",
    "num_shards": "TFRecord shards (0: chosen by the runner)",
    "write_outcomes": "write outcomes/outcomes-SSSSS-of-NNNNN.jsonl, one line per input pair "
                      "({key, status, reason}), to audit any pair (--no-write_outcomes: skip)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="align-curate", allow_abbrev=False,
        description="ALIGN curation (Jia et al. 2021, section 3). Flags not listed here are Beam "
                    "PipelineOptions (--runner, --project, --region, --temp_location, ...).")
    parser.add_argument("--input", required=True, help="Beam glob of input files")
    parser.add_argument("--input_format", required=True, choices=INPUT_FORMATS)
    parser.add_argument("--output_dir", required=True, help="local path or gs:// prefix")
    for field in dataclasses.fields(CurationConfig):
        if field.name in ("input", "input_format", "output_dir"):
            continue
        kind = field.type
        if typing.get_origin(kind) is typing.Union:  # Optional[X] -> X
            kind = typing.get_args(kind)[0]
        help_text = _HELP.get(field.name, "") + f" (default: {field.default})"
        if kind is bool:
            parser.add_argument(f"--{field.name}", action=argparse.BooleanOptionalAction,
                                default=field.default, help=help_text)
        else:
            parser.add_argument(f"--{field.name}", type=kind, default=field.default, help=help_text)
    return parser


def parse_all(argv: Optional[List[str]] = None):
    """(config, dedup_config, beam_args): curation flags, the near-duplicate flags of dedup/
    (appendix A; off without --eval_images) and every other flag for Beam's PipelineOptions."""
    from dedup.config import DedupConfig, add_dedup_flags

    parser = build_parser()
    add_dedup_flags(parser)
    namespace, beam_args = parser.parse_known_args(argv)
    names = {field.name for field in dataclasses.fields(CurationConfig)}
    config = CurationConfig(**{k: v for k, v in vars(namespace).items() if k in names})
    if config.unsafe_model_path and config.unsafe_score_field:
        raise SystemExit("give --unsafe_model_path or --unsafe_score_field, not both")
    return config, DedupConfig.from_flags(namespace), beam_args


def parse_args(argv: Optional[List[str]] = None) -> Tuple[CurationConfig, List[str]]:
    """(config, beam_args): our flags, and every other flag for Beam's PipelineOptions."""
    config, _, beam_args = parse_all(argv)
    return config, beam_args
