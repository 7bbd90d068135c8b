"""Fixed-edge histograms of numbers, as plain functions and as a Beam CombineFn.

Used for the audit histograms of stats.json (shorter side in px, aspect ratio, words per text,
alt-texts per image, images per alt-text). The output of both `histogram` and
`HistogramCombineFn` is a JSON-ready dict `{"edges": [...], "counts": [...]}` with one count per
edge: counts[i] counts values v with edges[i] <= v < edges[i+1]; the last bucket is open-ended
(v >= edges[-1]) and values below edges[0] are counted in bucket 0. The accumulator is a list of
len(edges) ints, so its size is fixed by the edges, never by the data (safe at any scale).
"""
import bisect
import math
from typing import Iterable, List, Sequence

import apache_beam as beam


def _check_edges(edges: Sequence[float]) -> List[float]:
    edges = [float(e) for e in edges]
    if not edges:
        raise ValueError("a histogram needs at least one edge")
    if any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError(f"histogram edges must be strictly increasing, got {edges}")
    return edges


def bucket_index(value: float, edges: Sequence[float]) -> int:
    """Index of the bucket of `value`: edges[i] <= value < edges[i+1]; clamped to [0, len-1]."""
    if isinstance(value, float) and math.isnan(value):
        raise ValueError("NaN cannot be put in a histogram bucket")
    return max(0, bisect.bisect_right(edges, value) - 1)


def empty_counts(edges: Sequence[float]) -> List[int]:
    return [0] * len(edges)


def add_value(counts: List[int], value: float, edges: Sequence[float]) -> List[int]:
    counts[bucket_index(value, edges)] += 1
    return counts


def merge_counts(all_counts: Iterable[List[int]]) -> List[int]:
    """Element-wise sum of several accumulators of the same edges."""
    merged = None
    for counts in all_counts:
        if merged is None:
            merged = list(counts)
        else:
            if len(counts) != len(merged):
                raise ValueError("cannot merge histograms with different edges")
            merged = [a + b for a, b in zip(merged, counts)]
    return merged


def to_dict(counts: List[int], edges: Sequence[float]) -> dict:
    return {"edges": list(edges), "counts": list(counts)}


def histogram(values: Iterable[float], edges: Sequence[float]) -> dict:
    """Plain-Python histogram with exactly the output of HistogramCombineFn."""
    edges = _check_edges(edges)
    counts = empty_counts(edges)
    for value in values:
        add_value(counts, value, edges)
    return to_dict(counts, edges)


def merge_histograms(histograms: Iterable[dict]) -> dict:
    """Sums histogram dicts that share the same edges (e.g. from several runs or shards)."""
    histograms = list(histograms)
    edges = histograms[0]["edges"]
    if any(h["edges"] != edges for h in histograms):
        raise ValueError("cannot merge histograms with different edges")
    return to_dict(merge_counts(h["counts"] for h in histograms), edges)


class HistogramCombineFn(beam.CombineFn):
    """beam.CombineFn: numbers -> {"edges", "counts"} (see module docstring for the buckets)."""

    def __init__(self, edges: Sequence[float]):
        super().__init__()
        self._edges = _check_edges(edges)

    def create_accumulator(self):
        return empty_counts(self._edges)

    def add_input(self, accumulator, value):
        return add_value(accumulator, value, self._edges)

    def merge_accumulators(self, accumulators):
        merged = merge_counts(accumulators)
        return merged if merged is not None else empty_counts(self._edges)

    def extract_output(self, accumulator):
        return to_dict(accumulator, self._edges)
