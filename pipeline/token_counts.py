"""Plain functions of the rare-token filter (paper 3): token counts, count-of-counts, cut-off.

A token is a unigram or a bigram of the normalized alt-text (pipeline.text_normalize). The paper
keeps the N most frequent tokens of the raw dataset (N = 100 million) and discards alt-texts with
any other token. Finding the N-th largest count does not need the N tokens: the count-of-counts
histogram {count: number of tokens with that count} has at most a few hundred thousand entries
even for billions of tokens (the distinct counts c_1 < c_2 < ... sum to at most the total number
of occurrences, so there are at most sqrt(2 * occurrences) of them).

Ties: tokens are kept when their count is >= min_count_kept, the smallest count such that at most
N tokens have a count that large. When the tokens with count c would push the kept set above N,
all of them are rare (never an arbitrary subset of a tie): at most N tokens are kept, perhaps fewer.
"""
from typing import Dict, Iterable, List, Optional, Tuple

import apache_beam as beam

from pipeline import reasons
from pipeline.text_normalize import bigrams, unigrams

MAX_KEYS_PER_TOKEN = 1000  # pair keys kept per token in the count accumulator (see docs/SCALE.md)


def tokens_of(text: str) -> List[str]:
    """Unigrams and bigrams of a normalized text, in order, with repetitions."""
    words = unigrams(text)
    return words + bigrams(words)


def token_counts_of_pair(key_text) -> Iterable[Tuple[str, Tuple[int, Tuple[str, ...]]]]:
    """(key, text) -> (token, (occurrences in the text, (key,))) once per distinct token."""
    key, text = key_text
    occurrences: Dict[str, int] = {}
    for token in tokens_of(text):
        occurrences[token] = occurrences.get(token, 0) + 1
    return [(token, (n, (key,))) for token, n in occurrences.items()]


def merge_token_counts(accumulators, max_keys: int) -> Tuple[int, Optional[Tuple[str, ...]]]:
    """Sums counts; keeps the pair keys only while the total count is <= max_keys (else None).

    Count >= number of distinct keys, so a token with count <= max_keys has all its keys.
    """
    total, keys = 0, []
    for count, acc_keys in accumulators:
        total += count
        if keys is not None and acc_keys is not None and total <= max_keys:
            keys.extend(acc_keys)
        else:
            keys = None
    return total, (tuple(keys) if keys is not None else None)


class TokenCountFn(beam.CombineFn):
    """CombineFn over (count, keys) values of one token: bounded accumulator (count, <= C keys)."""

    def __init__(self, max_keys: int = MAX_KEYS_PER_TOKEN):
        super().__init__()
        self._max_keys = max_keys

    def create_accumulator(self):
        return 0, ()

    def add_input(self, accumulator, value):
        return merge_token_counts([accumulator, value], self._max_keys)

    def merge_accumulators(self, accumulators):
        return merge_token_counts(accumulators, self._max_keys)

    def extract_output(self, accumulator):
        return accumulator


def add_to_count_of_counts(count_of_counts: Dict[int, int], count: int) -> Dict[int, int]:
    count_of_counts[count] = count_of_counts.get(count, 0) + 1
    return count_of_counts


class CountOfCountsFn(beam.CombineFn):
    """Token counts -> {count: number of tokens with that count} (bounded by distinct counts)."""

    def create_accumulator(self):
        return {}

    def add_input(self, accumulator, count):
        return add_to_count_of_counts(accumulator, count)

    def merge_accumulators(self, accumulators):
        merged: Dict[int, int] = {}
        for acc in accumulators:
            for count, n in acc.items():
                merged[count] = merged.get(count, 0) + n
        return merged

    def extract_output(self, accumulator):
        return accumulator


def frequency_cutoff(count_of_counts: Dict[int, int], top_n: int,
                     max_keys_per_token: Optional[int] = None) -> dict:
    """Summary with `min_count_kept`: tokens with count >= it are the kept top-N (ties excluded).

    Raises ValueError when rare tokens can have counts above `max_keys_per_token` (their pair
    keys were not all kept by TokenCountFn): raise max_keys_per_token or top_n.
    """
    distinct = sum(count_of_counts.values())
    kept, min_count_kept = 0, None
    for count in sorted(count_of_counts, reverse=True):
        if kept + count_of_counts[count] > top_n:
            break
        kept += count_of_counts[count]
        min_count_kept = count
    if min_count_kept is None:  # no token fits (empty input, or the most frequent tie exceeds N)
        min_count_kept = max(count_of_counts, default=0) + 1
    if max_keys_per_token is not None and min_count_kept - 1 > max_keys_per_token:
        raise ValueError(
            f"rare tokens have counts up to {min_count_kept - 1} but only {max_keys_per_token} pair "
            "keys per token are kept: raise max_keys_per_token (or top_n_tokens)")
    return {"distinct_tokens": distinct, "min_count_kept": min_count_kept, "tokens_kept": kept,
            "top_n_tokens": top_n}


def rare_token_flags(token_acc, summary: dict):
    """(token, (count, keys)) -> (key, "rare_token") for each pair of a token below the cut-off."""
    _, (count, keys) = token_acc
    if count < summary["min_count_kept"]:
        if keys is None:  # cannot happen after frequency_cutoff's check; never drop silently
            raise ValueError(f"rare token with count {count} lost its pair keys")
        for key in keys:
            yield key, reasons.RARE_TOKEN
