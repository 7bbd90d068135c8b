"""PreCombineInBundle: per-bundle partial counts that a CombinePerKey finishes exactly."""
import apache_beam as beam
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline.bundle_combine import PreCombineInBundle, one_per_first


def words(text):
    return [(word, 1) for word in text.split()]


def test_partial_sums_within_a_bundle_and_early_flush_at_max_keys():
    fn = PreCombineInBundle(words, sum, max_keys=3)
    fn.start_bundle()
    assert list(fn.process("a b a")) == []  # 2 distinct keys held
    assert sorted(fn.process("c a")) == [("a", 3), ("b", 1), ("c", 1)]  # 3rd key: flushed
    assert list(fn.process("b b")) == []
    emitted = [(wv.value, [str(w) for w in wv.windows]) for wv in fn.finish_bundle()]
    assert emitted == [(("b", 2), ["GlobalWindow"])]
    fn.start_bundle()
    assert list(fn.finish_bundle()) == []


def test_counts_are_exact_after_the_combine():
    texts = ["the cat", "the dog the", "a cat"] * 50
    with TestPipeline(runner=FnApiRunner()) as p:
        counts = (p | beam.Create(texts)
                  | beam.ParDo(PreCombineInBundle(words, sum, max_keys=2))
                  | beam.CombinePerKey(sum))
        assert_that(counts, equal_to([("the", 150), ("cat", 100), ("dog", 50), ("a", 50)]))


def test_one_per_first():
    assert one_per_first(("sha", "key")) == [("sha", 1)]
