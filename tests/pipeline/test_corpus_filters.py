import apache_beam as beam
import pytest
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline.corpus_filters import (
    FlagImagesWithManyAltTexts,
    FlagRareTokens,
    FlagSharedAltTexts,
    count_edges,
    text_id,
)
from pipeline.keyed_joins import salt_for, salted_flags, salted_member


def pipeline():
    return TestPipeline(runner=FnApiRunner())


def test_plain_helpers():
    assert count_edges(10) == [1, 2, 3, 5, 11, 101, 1001, 10001, 100001]
    assert count_edges(7)[4] == 8  # a bucket always starts at the first flagged count
    assert text_id("red bus") == text_id("red bus") != text_id("red  bus")
    assert len(text_id("x")) == 16
    assert salt_for("k1", 64) == salt_for("k1", 64) < 64
    assert salted_member(("g", "k1"), frozenset(), 64) == (("g", 0), "k1")
    assert salted_member(("g", "k1"), frozenset({"g"}), 64) == (("g", salt_for("k1", 64)), "k1")
    assert salted_flags("g", frozenset({"g"}), 3) == [(("g", 0), True), (("g", 1), True), (("g", 2), True)]
    assert salted_flags("h", frozenset({"g"}), 3) == [(("h", 0), True)]


EDGES = [1, 2, 3, 5, 11, 101, 1001, 10001, 100001]


def test_images_with_more_than_1000_alt_texts():
    # paper 3: more than 1000 alt-texts -> discarded; exactly 1000 kept
    pairs = [(f"a{i}", "sha_a") for i in range(1001)] + [(f"b{i}", "sha_b") for i in range(1000)]
    pairs += [("c0", "sha_c")]
    expected = [(f"a{i}", "too_many_alt_texts") for i in range(1001)]
    with pipeline() as p:
        pcoll = p | beam.Create(pairs)
        for hot_group_threshold in (100_000, 500):  # 500: both big images go through the salted join
            out = pcoll | f"Flag{hot_group_threshold}" >> FlagImagesWithManyAltTexts(
                hot_group_threshold=hot_group_threshold, salt_buckets=8)
            assert_that(out["flags"], equal_to(expected), label=f"flags{hot_group_threshold}")
            # alt-texts per image: 1001 (bucket [1001, 10001)), 1000 ([101, 1001)), 1
            assert_that(out["histogram"], equal_to([{"edges": EDGES, "counts": [1, 0, 0, 0, 0, 1, 1, 0, 0]}]),
                        label=f"histogram{hot_group_threshold}")


def test_alt_texts_shared_by_more_than_10_distinct_images():
    pairs = [(f"e{i}", f"img{i}", "eleven images") for i in range(11)]
    pairs += [(f"t{i}", f"img{i}", "ten images") for i in range(10)]
    # the same image repeated does not count twice: 10 distinct images over 15 pairs
    pairs += [(f"r{i}", f"img{i % 10}", "ten images repeated") for i in range(15)]
    pairs += [("u0", "img0", "unique text")]
    with pipeline() as p:
        pcoll = p | beam.Create(pairs)
        for hot_group_threshold in (100_000, 3):  # 3: the shared texts go through the salted join
            out = pcoll | f"Flag{hot_group_threshold}" >> FlagSharedAltTexts(
                hot_group_threshold=hot_group_threshold, salt_buckets=4)
            assert_that(out["flags"], equal_to([(f"e{i}", "alt_text_shared") for i in range(11)]),
                        label=f"flags{hot_group_threshold}")
            # images per alt-text: 11, 10, 10, 1
            assert_that(out["histogram"], equal_to([{"edges": EDGES, "counts": [1, 0, 0, 2, 1, 0, 0, 0, 0]}]),
                        label=f"histogram{hot_group_threshold}")


TEXTS = [("k1", "red bus"), ("k2", "red bus"), ("k3", "red car"), ("k4", "Blue car!")]
RARE_CASES = [  # top_n, flagged keys, min_count_kept, tokens_kept
    (3, ["k1", "k2", "k3", "k4"], 3, 1),  # tie at count 2 (bus, car, "red bus") excluded
    (4, ["k3", "k4"], 2, 4),  # blue, "red car", "blue car" are rare
    (7, [], 1, 7),
]


def test_rare_tokens_at_the_top_n_cutoff():
    with pipeline() as p:
        pcoll = p | beam.Create(TEXTS)
        for top_n, flagged, min_count_kept, tokens_kept in RARE_CASES:
            out = pcoll | f"Flag{top_n}" >> FlagRareTokens(top_n_tokens=top_n, max_keys_per_token=10,
                                                            hot_key_fanout=2)
            assert_that(out["flags"], equal_to([(k, "rare_token") for k in flagged]), label=f"flags{top_n}")
            assert_that(out["summary"], equal_to([{"distinct_tokens": 7, "min_count_kept": min_count_kept,
                                                  "tokens_kept": tokens_kept, "top_n_tokens": top_n}]),
                        label=f"summary{top_n}")


def test_rare_tokens_fail_loudly_when_keys_were_not_kept():
    with pytest.raises(Exception, match="max_keys_per_token"):
        with pipeline() as p:
            _ = p | beam.Create(TEXTS) | FlagRareTokens(top_n_tokens=1, max_keys_per_token=1)
