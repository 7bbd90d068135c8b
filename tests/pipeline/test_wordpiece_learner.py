"""pipeline/wordpiece_learner.py returns exactly tensorflow_text's learner result."""
import random

import pytest

from pipeline import wordpiece_learner
from pipeline.vocab import BERT_RESERVED_TOKENS, _wordpiece_learner_lib


def word_counts(n_words, seed):
    rng = random.Random(seed)
    letters = "etaoinshrdlcumwfgypbvkjxqzé"
    counts = {}
    while len(counts) < n_words:
        word = "".join(rng.choice(letters) for _ in range(rng.randint(1, 9)))
        counts[word] = counts.get(word, 0) + rng.choice([1, 2, 5, 20, 300, 4000])
    counts.update({"#": 7, "##": 3, "a##b": 2})  # joiner-looking words
    return sorted(counts.items())


@pytest.mark.parametrize("n_words, seed, vocab_size, kwargs", [
    (300, 0, 60, {}),
    (2000, 1, 400, {}),
    (2000, 2, 150, {"lower_thresh": 2}),
    (800, 3, 500, {"include_joiner_token": False, "num_iterations": 2}),
    (800, 4, 80, {"max_unique_chars": 12, "max_input_tokens": 500, "upper_thresh": 5000}),
    (50, 5, 1000, {"lower_thresh": 1, "upper_thresh": 1}),
])
def test_same_vocabulary_as_tensorflow_text(n_words, seed, vocab_size, kwargs):
    lib = _wordpiece_learner_lib()
    counts = word_counts(n_words, seed)
    expected = lib.learn(counts, vocab_size, list(BERT_RESERVED_TOKENS), **kwargs)
    assert wordpiece_learner.learn(lib, counts, vocab_size, BERT_RESERVED_TOKENS,
                                   **kwargs) == expected
    assert wordpiece_learner.learn(lib, dict(counts), vocab_size, BERT_RESERVED_TOKENS,
                                   **kwargs) == expected


@pytest.mark.parametrize("vocab_size, lower_thresh", [(2000, 10), (2000, 2), (150, 10)])
def test_lower_threshold_first_is_one_library_step_when_it_fits(vocab_size, lower_thresh):
    lib = _wordpiece_learner_lib()
    counts = word_counts(1500, 7)
    at_lower = lib.learn(counts, vocab_size, list(BERT_RESERVED_TOKENS),
                         lower_thresh=lower_thresh, upper_thresh=lower_thresh)
    searched = lib.learn(counts, vocab_size, list(BERT_RESERVED_TOKENS), lower_thresh=lower_thresh)
    expected = at_lower if len(at_lower) <= vocab_size else searched
    assert wordpiece_learner.learn(lib, counts, vocab_size, BERT_RESERVED_TOKENS,
                                   lower_thresh=lower_thresh,
                                   try_lower_thresh_first=True) == expected
