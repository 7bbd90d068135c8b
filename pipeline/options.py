"""Flags of `align-curate`: every paper threshold with the paper's default; the rest go to Beam.

`parse_args(argv)` splits the command line: the flags below make a `CurationConfig`; every other
flag must be a Beam pipeline option (`--runner`, `--project`, `--region`, `--temp_location`,
`--setup_file`, `--num_workers`, `--direct_running_mode`, ..., any option of a PipelineOptions
subclass) and is passed untouched to Beam's PipelineOptions. Anything else is an error (exit 2)
naming it: Beam only warns "Discarding unparseable args", so a misspelled `--min_word 1` would
otherwise run silently with the default --min_words 3.
"""
import argparse
import dataclasses
import difflib
import typing
from typing import List, Optional, Tuple

from pipeline import image_filters, text_filters
from schemas import image_decode as image_io
from pipeline.output_formats import OUTPUT_FORMATS
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
    # Protections against hostile inputs (not paper filters).
    max_caption_bytes: int = 65536  # longer raw texts: caption_too_long, never normalized
    max_image_bytes: int = 67_108_864  # 64 MiB: far above any web image, below a worker's memory
    image_read_timeout_s: float = 60.0
    # Input columns and output layout.
    text_column: str = "caption"
    image_column: Optional[str] = None
    num_shards: int = 0  # 0: the runner picks
    output_format: str = "tfrecord"  # or webdataset, parquet (pipeline/output_formats.py)
    report_samples_per_reason: int = 12
    write_outcomes: bool = True  # outcomes/*.jsonl: key, status, reason of every input pair
    # Watching a run (not an output): seconds between progress lines on stderr, 0 disables.
    progress_interval_s: float = 10.0


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
    "max_caption_bytes": "raw alt-texts longer than this many bytes are caption_too_long errors, "
                         "never decoded or normalized (a protection, not a paper filter: paper 3's "
                         "20-unigram cap drops long texts anyway)",
    "max_image_bytes": "image files and webdataset members larger than this are "
                       "image_file_too_large errors, never read into memory",
    "image_read_timeout_s": "reads of an image named by path (TSV/parquet) that take longer are "
                            "image_read_timeout errors",
    "num_shards": "shards of each sharded output: TFRecords / webdataset tars / parquet, "
                  "kept_pairs and outcomes (0: chosen by the runner)",
    "output_format": "format of the kept pairs: tfrecord (tfrecords/*.tfrecord), webdataset "
                     "(webdataset/SSSSS.tar, img2dataset layout, for open_clip) or parquet "
                     "(parquet/*.parquet, with image bytes); kept_pairs/*.parquet (metadata, no "
                     "images) is written with every format",
    "progress_interval_s": "print a progress line (pairs read, kept, dropped, errors, pairs/s) "
                           "from the live counters to stderr every this many seconds while the "
                           "pipeline runs; 0 disables (docs/PIPELINE.md, Watching a run)",
    "write_outcomes": "write outcomes/outcomes-SSSSS-of-NNNNN.jsonl, one line per input pair "
                      "({key, status, reason}), to audit any pair (--no-write_outcomes: skip)",
}


_CHOICES = {"output_format": OUTPUT_FORMATS}


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
            parser.add_argument(f"--{field.name}", type=kind, default=field.default, help=help_text,
                                choices=_CHOICES.get(field.name))
    return parser


def _beam_parser() -> argparse.ArgumentParser:
    """A parser of every Beam pipeline option, built as PipelineOptions.get_all_options builds its
    own (each subclass's _add_argparse_args on a _BeamArgumentParser, which knows ValueProvider
    options), but from every subclass imported so far, subclasses of subclasses too: view_as()
    accepts those. Duplicates resolve quietly, as a subclass may re-add its parent's options."""
    from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

    parser = _BeamArgumentParser(prog="align-curate", usage="%(prog)s [Beam pipeline options]",
                                 allow_abbrev=False, conflict_handler="resolve")
    seen, pending = set(), list(PipelineOptions.__subclasses__())
    while pending:
        cls = pending.pop(0)
        if str(cls) in seen:  # a class imported twice (e.g. via __main__) counts once, as there
            continue
        seen.add(str(cls))
        pending.extend(cls.__subclasses__())
        if "_add_argparse_args" in cls.__dict__:
            cls._add_argparse_args(parser)  # pylint: disable=protected-access
    return parser


def _option_strings(parser: argparse.ArgumentParser) -> List[str]:
    return [flag for action in parser._actions for flag in action.option_strings]  # noqa


def _reject_unknown(parser: argparse.ArgumentParser, rest: List[str]) -> None:
    """parser.error (exit 2) naming every flag of `rest` that Beam does not know either."""
    beam = _beam_parser()
    _, unknown = beam.parse_known_args(rest)  # also rejects bad values of Beam's own flags
    if not unknown:
        return
    known = _option_strings(parser) + _option_strings(beam)
    hints = []
    for arg in unknown:
        name = arg.split("=", 1)[0]
        close = difflib.get_close_matches(name, known, n=1) if name.startswith("--") else []
        hints += [f"; did you mean {close[0]} instead of {name}?"] if close else []
    parser.error(f"unrecognized arguments: {' '.join(unknown)} (not an align-curate flag and not "
                 "a Beam pipeline option)" + "".join(hints))


def parse_all(argv: Optional[List[str]] = None):
    """(config, dedup_config, beam_args): curation flags, the near-duplicate flags of dedup/
    (appendix A; off without --eval_images) and the Beam pipeline options, untouched. Any other
    flag is an error (exit 2, see the module docstring)."""
    from dedup.config import DedupConfig, add_dedup_flags

    parser = build_parser()
    add_dedup_flags(parser)
    namespace, beam_args = parser.parse_known_args(argv)
    _reject_unknown(parser, beam_args)
    names = {field.name for field in dataclasses.fields(CurationConfig)}
    config = CurationConfig(**{k: v for k, v in vars(namespace).items() if k in names})
    if config.unsafe_model_path and config.unsafe_score_field:
        raise SystemExit("give --unsafe_model_path or --unsafe_score_field, not both")
    return config, DedupConfig.from_flags(namespace), beam_args


def parse_args(argv: Optional[List[str]] = None) -> Tuple[CurationConfig, List[str]]:
    """(config, beam_args): our flags, and the Beam pipeline options (any other flag: exit 2)."""
    config, _, beam_args = parse_all(argv)
    return config, beam_args
