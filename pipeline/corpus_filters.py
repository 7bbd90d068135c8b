"""Filters that need counts over the whole corpus (paper section 3), as Beam composite transforms.

  * FlagImagesWithManyAltTexts: "discard images with more than 1000 associated alt-texts".
    "The same image" = the same SHA-256 of the encoded image bytes as downloaded (byte-identical
    files; re-encoded or resized copies are different images here and are the job of dedup/).
    Every pair counts as one associated alt-text (identical texts included).
  * FlagSharedAltTexts: "exclude alt-texts that are shared by more than 10 images": DISTINCT
    images (SHA-256) per normalized alt-text; every pair with such an alt-text is flagged.
  * FlagRareTokens: "discard alt-texts that contain any rare token (outside of 100 million most
    frequent unigrams and bigrams from the raw dataset)": occurrence counts of unigrams and bigrams
    (pipeline.text_normalize) over every readable pair; the top-N cut-off is read from a
    count-of-counts histogram, not from a Top.Of(N).
Each returns a dict of PCollections; flags are (key, reason) with one element per flagged pair.
Scale reasoning (1.8B pairs on Dataflow): docs/SCALE.md.
"""
import functools
import hashlib

import apache_beam as beam

from pipeline import reasons
from pipeline.bundle_combine import PreCombineInBundle, one_per_first
from pipeline.histograms import HistogramCombineFn
from pipeline.keyed_joins import HOT_GROUP_THRESHOLD, SALT_BUCKETS, FlagMembersOfFlaggedGroups
from pipeline.token_counts import (
    MAX_KEYS_PER_TOKEN,
    CountOfCountsFn,
    TokenCountFn,
    frequency_cutoff,
    merge_token_counts,
    rare_token_flags,
    token_counts_of_pair,
)

MAX_ALT_TEXTS_PER_IMAGE = 1000  # paper 3: images with more than 1000 alt-texts are discarded
MAX_IMAGES_PER_ALT_TEXT = 10  # paper 3: alt-texts shared by more than 10 images are excluded
TOP_N_TOKENS = 100_000_000  # paper 3: unigrams/bigrams outside the 100M most frequent are rare
HOT_KEY_FANOUT = 16  # intermediate combine keys per hot key (alt-text "image", token "the")
_COUNT_EDGES = [1, 2, 3, 5, 11, 101, 1001, 10001, 100001]


def count_edges(threshold: int) -> list:
    """Histogram edges with a bucket starting right above `threshold` (the first flagged count)."""
    return sorted(set(_COUNT_EDGES) | {threshold + 1})


def text_id(text: str) -> bytes:
    """16-byte BLAKE2b of the normalized alt-text: the group key of FlagSharedAltTexts (shuffles
    16 bytes per pair instead of the text; collision odds for 2e9 texts ~ 2^-67)."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


class _FlagLargeGroups(beam.PTransform):
    """{"members": (group, key), "sizes": (group, size), optional "member_counts"} -> (key, reason)
    for every member of a group whose size is > max_size."""

    def __init__(self, max_size, reason, hot_group_threshold, salt_buckets, hot_key_fanout):
        super().__init__()
        self._max = max_size
        self._join = FlagMembersOfFlaggedGroups(reason, hot_group_threshold, salt_buckets, hot_key_fanout)

    def expand(self, pcolls):
        flagged = (pcolls["sizes"]
                   | "AboveMax" >> beam.Filter(lambda group_size, m: group_size[1] > m, self._max)
                   | "GroupIds" >> beam.Keys())
        join_inputs = {"members": pcolls["members"], "flagged_groups": flagged}
        if "member_counts" in pcolls:
            join_inputs["member_counts"] = pcolls["member_counts"]
        return join_inputs | "FlagMembers" >> self._join


class FlagImagesWithManyAltTexts(beam.PTransform):
    """PCollection[(key, image_sha256)] -> {"flags": (key, "too_many_alt_texts"), "histogram"}."""

    def __init__(self, max_alt_texts_per_image=MAX_ALT_TEXTS_PER_IMAGE, hot_key_fanout=HOT_KEY_FANOUT,
                 hot_group_threshold=HOT_GROUP_THRESHOLD, salt_buckets=SALT_BUCKETS):
        super().__init__()
        self._max = max_alt_texts_per_image
        self._fanout = hot_key_fanout
        self._hot, self._salts = hot_group_threshold, salt_buckets

    def expand(self, key_sha):
        members = key_sha | "BySha" >> beam.Map(lambda ks: (ks[1], ks[0]))
        alt_texts = (members
                     | "AltTextsInBundle" >> beam.ParDo(PreCombineInBundle(one_per_first, sum))
                     | "AltTextsPerImage" >> beam.CombinePerKey(sum).with_hot_key_fanout(self._fanout))
        flags = {"members": members, "sizes": alt_texts, "member_counts": alt_texts} | "FlagImages" >> _FlagLargeGroups(
            self._max, reasons.TOO_MANY_ALT_TEXTS, self._hot, self._salts, self._fanout)
        histogram = (alt_texts
                     | "Counts" >> beam.Values()
                     | "Histogram" >> beam.CombineGlobally(HistogramCombineFn(count_edges(self._max))))
        return {"flags": flags, "histogram": histogram}


class FlagSharedAltTexts(beam.PTransform):
    """PCollection[(key, image_sha256, text)] -> {"flags": (key, "alt_text_shared"), "histogram"}."""

    def __init__(self, max_images_per_alt_text=MAX_IMAGES_PER_ALT_TEXT, hot_key_fanout=HOT_KEY_FANOUT,
                 hot_group_threshold=HOT_GROUP_THRESHOLD, salt_buckets=SALT_BUCKETS):
        super().__init__()
        self._max = max_images_per_alt_text
        self._fanout = hot_key_fanout
        self._hot, self._salts = hot_group_threshold, salt_buckets

    def expand(self, key_sha_text):
        with_id = key_sha_text | "TextId" >> beam.Map(lambda kst: (text_id(kst[2]), kst[1], kst[0]))
        members = with_id | "ByText" >> beam.Map(lambda isk: (isk[0], isk[2]))
        images = (with_id
                  | "TextImage" >> beam.Map(lambda isk: (isk[0], isk[1]))
                  | "DistinctImages" >> beam.Distinct()
                  | "ImagesInBundle" >> beam.ParDo(PreCombineInBundle(one_per_first, sum))
                  | "ImagesPerAltText" >> beam.CombinePerKey(sum).with_hot_key_fanout(self._fanout))
        flags = {"members": members, "sizes": images} | "FlagTexts" >> _FlagLargeGroups(
            self._max, reasons.ALT_TEXT_SHARED, self._hot, self._salts, self._fanout)
        histogram = (images
                     | "Counts" >> beam.Values()
                     | "Histogram" >> beam.CombineGlobally(HistogramCombineFn(count_edges(self._max))))
        return {"flags": flags, "histogram": histogram}


class FlagRareTokens(beam.PTransform):
    """PCollection[(key, text)] -> {"flags": (key, "rare_token"), "summary": one dict}.

    Token counts are a CombinePerKey whose accumulator is (count, up to `max_keys_per_token` pair
    keys): the keys of rare tokens come out of the combine, so no join is needed. Raises if the
    cut-off needs keys of tokens seen more than `max_keys_per_token` times.
    """

    def __init__(self, top_n_tokens=TOP_N_TOKENS, max_keys_per_token=MAX_KEYS_PER_TOKEN,
                 hot_key_fanout=HOT_KEY_FANOUT):
        super().__init__()
        self._top_n = top_n_tokens
        self._max_keys = max_keys_per_token
        self._fanout = hot_key_fanout

    def expand(self, key_text):
        merge = functools.partial(merge_token_counts, max_keys=self._max_keys)
        counts = (key_text
                  | "TokensInBundle" >> beam.ParDo(PreCombineInBundle(token_counts_of_pair, merge))
                  | "CountTokens" >> beam.CombinePerKey(
                      TokenCountFn(self._max_keys)).with_hot_key_fanout(self._fanout))
        summary = (counts
                   | "TokenCount" >> beam.Map(lambda token_acc: token_acc[1][0])
                   | "CountOfCounts" >> beam.CombineGlobally(CountOfCountsFn())
                   | "CutOff" >> beam.Map(frequency_cutoff, self._top_n, self._max_keys))
        flags = (counts
                 | "RareTokenKeys" >> beam.FlatMap(rare_token_flags, beam.pvalue.AsSingleton(summary))
                 | "OnePerPair" >> beam.Distinct())
        return {"flags": flags, "summary": summary}
