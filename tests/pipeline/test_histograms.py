import math

import apache_beam as beam
import pytest
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline.histograms import HistogramCombineFn, histogram, merge_histograms

EDGES = [0, 10, 100]


def test_histogram_buckets_and_open_ends():
    # below edges[0] -> bucket 0; edges[i] <= v < edges[i+1]; last bucket open-ended
    out = histogram([-5, 0, 9.99, 10, 99, 100, 1e9], EDGES)
    assert out == {"edges": [0.0, 10.0, 100.0], "counts": [3, 2, 2]}


def test_histogram_empty_and_bad_input():
    assert histogram([], EDGES) == {"edges": [0.0, 10.0, 100.0], "counts": [0, 0, 0]}
    with pytest.raises(ValueError):
        histogram([1], [10, 10])
    with pytest.raises(ValueError):
        histogram([math.nan], EDGES)


def test_merge_histograms():
    a, b = histogram([1, 50], EDGES), histogram([200], EDGES)
    assert merge_histograms([a, b])["counts"] == [1, 1, 1]
    with pytest.raises(ValueError):
        merge_histograms([a, histogram([1], [0, 5])])


def test_combine_fn_matches_plain_function():
    values = [-1, 0, 3, 10, 10, 55, 100, 101, 5000]
    with TestPipeline(runner=FnApiRunner()) as p:
        out = p | beam.Create(values) | beam.CombineGlobally(HistogramCombineFn(EDGES))
        assert_that(out, equal_to([histogram(values, EDGES)]))


def test_combine_fn_on_empty_input():
    with TestPipeline(runner=FnApiRunner()) as p:
        out = p | beam.Create([]) | beam.CombineGlobally(HistogramCombineFn(EDGES))
        assert_that(out, equal_to([{"edges": [0.0, 10.0, 100.0], "counts": [0, 0, 0]}]))
