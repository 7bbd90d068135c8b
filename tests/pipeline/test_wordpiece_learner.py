"""pipeline/wordpiece_learner.py returns exactly tensorflow_text's learner result."""
import random

import pytest

from pipeline import wordpiece_learner
from pipeline.vocab import BERT_RESERVED_TOKENS

RESERVED = list(BERT_RESERVED_TOKENS)
LIBRARY = wordpiece_learner.tensorflow_text_learner()
needs_library = pytest.mark.skipif(
    LIBRARY is None, reason="tensorflow_text is not installed: its learner, the reference these "
                            "tests compare with, is not available (the [curate] install)")


def word_counts(n_words, seed, joiner_words=True):
    rng = random.Random(seed)
    letters = "etaoinshrdlcumwfgypbvkjxqzé"
    counts = {}
    while len(counts) < n_words:
        word = "".join(rng.choice(letters) for _ in range(rng.randint(1, 9)))
        counts[word] = counts.get(word, 0) + rng.choice([1, 2, 5, 20, 300, 4000])
    if joiner_words:  # words starting with / holding the joiner: the per-word counting path
        counts.update({"#": 7, "##": 3, "a##b": 2, "##ab": 40, "##e": 500})
    return sorted(counts.items())


CASES = [
    (300, 0, 60, {}),
    (2000, 1, 400, {}),
    (2000, 2, 150, {"lower_thresh": 2}),
    (800, 3, 500, {"include_joiner_token": False, "num_iterations": 2}),
    (800, 4, 80, {"max_unique_chars": 12, "max_input_tokens": 500, "upper_thresh": 5000}),
    (50, 5, 1000, {"lower_thresh": 1, "upper_thresh": 1}),
    (300, 6, 100, {"lower_thresh": 0, "upper_thresh": 0}),  # threshold 0: zero-count pieces
    (300, 7, 100, {"joiner": "", "include_joiner_token": True}),
    (300, 8, 100, {"joiner": "e"}),  # the joiner is a letter: pieces and words share strings
    (400, 9, 120, {"num_iterations": 1}),
    (400, 10, 120, {"num_iterations": 0}),
    (3000, 11, 900, {"max_token_length": 6}),
    # The search ends one below its lowest bound (threshold 3999, then 49): the numpy passes
    # leave out pieces that cannot reach the lowest threshold tried, this one included.
    (600, 12, 5000, {"lower_thresh": 4000, "upper_thresh": 4001}),
    (600, 12, 5000, {"lower_thresh": 50}),
]


@needs_library
@pytest.mark.parametrize("joiner_words", [True, False])
@pytest.mark.parametrize("n_words, seed, vocab_size, kwargs", CASES)
def test_same_vocabulary_as_tensorflow_text(n_words, seed, vocab_size, kwargs, joiner_words):
    counts = word_counts(n_words, seed, joiner_words)
    expected = LIBRARY.learn(counts, vocab_size, RESERVED, **kwargs)
    trace = {}
    assert wordpiece_learner.learn(counts, vocab_size, RESERVED, trace=trace, **kwargs) == expected
    assert wordpiece_learner.learn(dict(counts), vocab_size, RESERVED, **kwargs) == expected
    assert wordpiece_learner.learn(counts, vocab_size, RESERVED, use_numpy=False,
                                   **kwargs) == expected
    default_joiner = kwargs.get("joiner", "##") == "##" and kwargs.get("include_joiner_token", True)
    if not joiner_words and default_joiner and kwargs.get("num_iterations", 4) > 0:
        assert trace["counting"] == "numpy"


@needs_library
@pytest.mark.parametrize("vocab_size, lower_thresh", [(2000, 10), (2000, 2), (150, 10)])
def test_lower_threshold_first_is_one_library_step_when_it_fits(vocab_size, lower_thresh):
    counts = word_counts(1500, 7, joiner_words=False)
    at_lower = LIBRARY.learn(counts, vocab_size, RESERVED, lower_thresh=lower_thresh,
                             upper_thresh=lower_thresh)
    searched = LIBRARY.learn(counts, vocab_size, RESERVED, lower_thresh=lower_thresh)
    expected = at_lower if len(at_lower) <= vocab_size else searched
    assert wordpiece_learner.learn(counts, vocab_size, RESERVED, lower_thresh=lower_thresh,
                                   try_lower_thresh_first=True) == expected


@needs_library
def test_same_vocabulary_on_zipf_counts_with_a_long_search():
    """The shape of the benchmark's input (bench/vocab_learner.py): ~15 search steps."""
    from bench.vocab_learner import zipf_word_counts

    counts = sorted(zipf_word_counts(3000, seed=3).items())
    expected = LIBRARY.learn(counts, 600, RESERVED)
    trace = {}
    assert wordpiece_learner.learn(counts, 600, RESERVED, trace=trace) == expected
    assert len(trace["steps"]) > 8 and trace["counting"] == "numpy"


@pytest.mark.parametrize("n_words, seed, vocab_size, kwargs", CASES)
def test_numpy_and_per_word_counting_agree(n_words, seed, vocab_size, kwargs):
    """Runs without tensorflow_text too."""
    counts = word_counts(n_words, seed, joiner_words=False)
    assert (wordpiece_learner.learn(counts, vocab_size, RESERVED, **kwargs)
            == wordpiece_learner.learn(counts, vocab_size, RESERVED, use_numpy=False, **kwargs))


# Hand-computed: the threshold is pinned to 30 (lower = upper = 30, the largest count above it).
# Pass 0 (every position starts a piece; a piece's count is that of the words it ENDS, see the
# module docstring): words zz 100 (kept), ab 20; ##b 20+10+10+10 = 50, ##ab 10+10+10 = 30,
# ##z 100: kept. Pass 1 splits ab = a ##b, cab = c ##ab, dab = d ##ab, eab = e ##ab, zz = zz:
# ##ab 30 kept, ##b 20 not (it stays as a character, count 1). Pass 2 splits the same: stop.
HAND_COUNTS = {"ab": 20, "cab": 10, "dab": 10, "eab": 10, "zz": 100}
HAND_VOCAB = RESERVED + ["a", "b", "c", "d", "e", "z", "zz", "##ab",
                         "##a", "##b", "##c", "##d", "##e", "##z"]


@pytest.mark.parametrize("use_numpy", [True, False])
def test_hand_computed_top_down_counts(use_numpy):
    trace = {}
    vocab = wordpiece_learner.learn(HAND_COUNTS, 100, RESERVED, lower_thresh=30, upper_thresh=30,
                                    use_numpy=use_numpy, trace=trace)
    assert vocab == HAND_VOCAB
    assert trace["steps"] == [[30, len(HAND_VOCAB)]]
    # At 10 every word is a piece (each seen >= 10 times), ordered by count, then the ##b / ##ab
    # of pass 0 are gone: every word is whole from pass 1 on.
    assert wordpiece_learner.learn(HAND_COUNTS, 100, RESERVED, lower_thresh=10, upper_thresh=10,
                                   use_numpy=use_numpy) == RESERVED + [
        "a", "b", "c", "d", "e", "z", "zz", "ab", "cab", "dab", "eab",
        "##a", "##b", "##c", "##d", "##e", "##z"]


@needs_library
def test_hand_computed_cases_are_the_library_result():
    assert LIBRARY.learn(HAND_COUNTS, 100, RESERVED, lower_thresh=30, upper_thresh=30) == HAND_VOCAB


def test_small_edge_cases():
    assert wordpiece_learner.learn({"": 5, "a": 3}, 10, RESERVED, lower_thresh=1) == \
        RESERVED + ["a", "##a"]
    # A word that is a reserved token, or longer than max_token_length, is not learned from.
    assert wordpiece_learner.learn({"[UNK]": 50, "toolong": 50, "ok": 50}, 30, RESERVED,
                                   max_token_length=4) == RESERVED + ["k", "o", "ok", "##k", "##o"]
