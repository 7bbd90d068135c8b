"""stats.json as data: the funnel, errors, conversions, filters applied, histograms (plain functions).

Everything here works on small, already-combined values (counts per reason, histogram dicts), so
the same stats come out on every runner. `check_identity` enforces
    input_pairs == kept_pairs + sum(dropped) + sum(errors)
and raises `StatsIdentityError` (failing the pipeline) when a pair was lost or counted twice.
"""
import dataclasses
import json
from typing import Dict, Iterable, Optional, Tuple

from pipeline import reasons, records
from schemas.image_decode import CONVERSIONS

# Histogram edges (bucket i counts edges[i] <= v < edges[i+1]; the last is open-ended).
SHORTER_SIDE_EDGES_PX = [0, 64, 128, 200, 201, 256, 346, 512, 768, 1024, 2048]  # 200 | 201: paper 3
ASPECT_RATIO_EDGES = [1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0, 10.0]  # 3.0: paper 3
WORDS_PER_TEXT_EDGES = [0, 1, 2, 3, 5, 8, 12, 16, 20, 21, 30, 50, 100]  # 3 and 20/21: paper 3

KEPT, DROPPED, ERROR = "kept", "dropped", "error"


class StatsIdentityError(RuntimeError):
    """input_pairs != kept_pairs + sum(dropped) + sum(errors): a pair was lost or double-counted."""


def tally_outcomes(counts: Iterable[Tuple[Tuple[str, Optional[str]], int]]) -> dict:
    """((status, reason), count) pairs -> kept_pairs, dropped (every DROP_ORDER reason, zeros
    included) and errors (every known error name, zeros included, plus any other seen)."""
    kept = 0
    dropped = {reason: 0 for reason in reasons.DROP_ORDER}
    errors = {name: 0 for name in records.ERRORS}
    for (status, reason), count in counts:
        if status == KEPT:
            kept += count
        elif status == DROPPED:
            if reason not in dropped:
                raise ValueError(f"unknown drop reason {reason!r}")
            dropped[reason] += count
        elif status == ERROR:
            errors[reason] = errors.get(reason, 0) + count
        else:
            raise ValueError(f"unknown outcome status {status!r}")
    return {"kept_pairs": kept, "dropped": dropped, "errors": errors}


def check_identity(stats: dict) -> None:
    total = stats["kept_pairs"] + sum(stats["dropped"].values()) + sum(stats["errors"].values())
    if stats["input_pairs"] != total:
        raise StatsIdentityError(
            f"input_pairs ({stats['input_pairs']}) != kept_pairs ({stats['kept_pairs']}) + "
            f"sum(dropped) ({sum(stats['dropped'].values())}) + sum(errors) "
            f"({sum(stats['errors'].values())}) = {total}: pairs were lost or double-counted. "
            f"dropped={stats['dropped']} errors={stats['errors']}")


def _near_duplicate_entry(dedup_applied: bool, eval_error_counts) -> dict:
    if not dedup_applied:
        return {"applied": False, "note": "NOT APPLIED in this run: no near-duplicate flags were "
                                          "given (see dedup/, appendix A)"}
    entry = {"applied": True,
             "note": "near-duplicates of evaluation images flagged by dedup/ (appendix A)"}
    if eval_error_counts is not None:
        counts = {name: int(n) for name, n in sorted(eval_error_counts)}
        entry["unreadable_eval_images"] = counts
        if counts:
            entry["note"] += (f"; {sum(counts.values())} evaluation images or files could NOT be "
                              "read and were not compared, so their copies may remain in the "
                              "training data (eval_unreadable.jsonl)")
    return entry


def filters_table(config, unsafe_summary: dict, rare_summary: dict, dedup_applied: bool,
                  eval_error_counts=None) -> dict:
    """The `filters` entry: per drop reason, whether it was applied and with which thresholds."""
    section = "paper section 3"
    return {
        reasons.IMAGE_TOO_SMALL: {"applied": True, "min_image_side_px": config.min_image_side_px,
                                  "note": f"keep shorter side > {config.min_image_side_px} px "
                                          f"({section})"},
        reasons.ASPECT_RATIO: {"applied": True, "max_aspect_ratio": config.max_aspect_ratio,
                               "note": f"keep longer/shorter side < {config.max_aspect_ratio} "
                                       f"({section})"},
        reasons.TOO_MANY_ALT_TEXTS: {
            "applied": True, "max_alt_texts_per_image": config.max_alt_texts_per_image,
            "note": f"drop images with > {config.max_alt_texts_per_image} alt-texts; the same "
                    f"image = same SHA-256 of the encoded bytes ({section})"},
        reasons.UNSAFE: dict(unsafe_summary),
        reasons.ALT_TEXT_SHARED: {
            "applied": True, "max_images_per_alt_text": config.max_images_per_alt_text,
            "note": f"drop alt-texts shared by > {config.max_images_per_alt_text} distinct images "
                    f"({section})"},
        reasons.TOO_FEW_WORDS: {"applied": True, "min_words": config.min_words,
                                "note": f"drop < {config.min_words} unigrams ({section})"},
        reasons.TOO_MANY_WORDS: {"applied": True, "max_words": config.max_words,
                                 "note": f"drop > {config.max_words} unigrams ({section})"},
        reasons.RARE_TOKEN: {"applied": True, "top_n_tokens": config.top_n_tokens,
                             "note": f"drop alt-texts with a unigram or bigram outside the "
                                     f"{config.top_n_tokens} most frequent of the raw data "
                                     f"({section})", **{k: v for k, v in rare_summary.items()
                                                        if k != "top_n_tokens"}},
        reasons.NEAR_DUPLICATE_OF_EVAL: _near_duplicate_entry(dedup_applied, eval_error_counts),
    }


def build_stats(*, config, input_pairs: int, outcome_counts, conversion_counts,
                unsafe_summary: dict, rare_summary: dict, vocab: dict,
                histograms: Dict[str, dict], dedup_applied: bool, eval_error_counts=None) -> dict:
    """Assembles stats.json (layout: docs/PIPELINE.md) and checks the identity (raises)."""
    stats = {"input_pairs": int(input_pairs)}
    stats.update(tally_outcomes(outcome_counts))
    conversions = {name: 0 for name in CONVERSIONS}
    for name, count in conversion_counts:
        conversions[name] = conversions.get(name, 0) + count
    stats["conversions"] = conversions
    stats["filters"] = filters_table(config, unsafe_summary, rare_summary, dedup_applied,
                                     eval_error_counts)
    stats["rare_tokens"] = dict(rare_summary)
    stats["vocab"] = dict(vocab)
    stats["histograms"] = dict(histograms)
    stats["drop_order"] = list(reasons.DROP_ORDER)
    stats["config"] = dataclasses.asdict(config)
    check_identity(stats)
    return stats


def to_json(stats: dict) -> str:
    return json.dumps(stats, indent=2, sort_keys=False, ensure_ascii=False) + "\n"
