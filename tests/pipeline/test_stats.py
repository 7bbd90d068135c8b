"""stats.json assembly: zeros for every reason, the identity check failing loudly."""
import json

import pytest

from pipeline import reasons, records, stats
from pipeline.options import CurationConfig, parse_args

UNSAFE = {"applied": False, "mode": "none", "note": "NOT APPLIED: no scorer configured"}
RARE = {"distinct_tokens": 9, "min_count_kept": 2, "tokens_kept": 5, "top_n_tokens": 100}


def build(input_pairs, outcome_counts):
    return stats.build_stats(
        config=CurationConfig(), input_pairs=input_pairs, outcome_counts=outcome_counts,
        conversion_counts=[("cmyk_to_rgb", 2)], unsafe_summary=UNSAFE, rare_summary=RARE,
        vocab={"requested": 100, "achieved": 42},
        histograms={"words_per_text": {"edges": [0], "counts": [1]}}, dedup_applied=False)


def test_layout_with_zeros_for_every_reason():
    result = build(6, [(("kept", None), 3), (("dropped", reasons.RARE_TOKEN), 2),
                       (("error", records.MISSING_TEXT), 1)])
    assert result["input_pairs"] == 6 and result["kept_pairs"] == 3
    assert list(result["dropped"]) == list(reasons.DROP_ORDER)
    assert result["dropped"][reasons.RARE_TOKEN] == 2 and sum(result["dropped"].values()) == 2
    assert set(records.ERRORS) <= set(result["errors"]) and result["errors"]["missing_text"] == 1
    assert result["conversions"]["cmyk_to_rgb"] == 2 and result["conversions"]["resized"] == 0
    assert result["filters"]["unsafe"]["applied"] is False
    assert result["filters"][reasons.NEAR_DUPLICATE_OF_EVAL]["applied"] is False
    assert result["filters"]["image_too_small"]["min_image_side_px"] == 200
    assert result["filters"]["rare_token"]["min_count_kept"] == 2
    assert result["drop_order"] == list(reasons.DROP_ORDER)
    assert result["config"]["top_n_tokens"] == 100_000_000
    assert json.loads(stats.to_json(result)) == result


def test_identity_failure_is_loud():
    with pytest.raises(stats.StatsIdentityError, match=r"input_pairs \(7\) != kept_pairs \(3\)"):
        build(7, [(("kept", None), 3), (("dropped", reasons.RARE_TOKEN), 2),
                  (("error", records.MISSING_TEXT), 1)])


def test_unknown_reason_or_status_is_refused():
    with pytest.raises(ValueError):
        stats.tally_outcomes([(("dropped", "ugly"), 1)])
    with pytest.raises(ValueError):
        stats.tally_outcomes([(("lost", None), 1)])


def test_paper_defaults_and_beam_flags_pass_through():
    config, beam_args = parse_args([
        "--input", "x/*.tar", "--input_format", "webdataset", "--output_dir", "out",
        "--runner=DirectRunner", "--direct_running_mode=multi_processing", "--vocab_size", "2000"])
    assert (config.min_image_side_px, config.max_aspect_ratio, config.max_alt_texts_per_image,
            config.max_images_per_alt_text, config.min_words, config.max_words,
            config.top_n_tokens) == (200, 3.0, 1000, 10, 3, 20, 100_000_000)
    assert config.vocab_size == 2000 and config.unsafe_model_path is None
    assert beam_args == ["--runner=DirectRunner", "--direct_running_mode=multi_processing"]


def test_boolean_flags_switch_both_ways():
    base = ["--input", "x/*.tar", "--input_format", "webdataset", "--output_dir", "out"]
    assert parse_args(base)[0].write_outcomes is True
    assert parse_args(base + ["--no-write_outcomes"])[0].write_outcomes is False
    assert parse_args(base + ["--write_outcomes"])[0].write_outcomes is True


def test_vocab_section_is_kept_as_given():
    vocab = {"requested": 8000, "achieved": 580, "limited_by": "min_piece_count",
             "limited_by_explanation": "every word piece seen at least 10 times fits in 580 "
                                       "entries", "search_steps": [[10, 580]]}
    result = stats.build_stats(
        config=CurationConfig(), input_pairs=1, outcome_counts=[(("kept", None), 1)],
        conversion_counts=[], unsafe_summary=UNSAFE, rare_summary=RARE, vocab=vocab,
        histograms={}, dedup_applied=False)
    assert json.loads(stats.to_json(result))["vocab"] == vocab
