import pytest

from pipeline import reasons
from pipeline.text_filters import filter_word_count


def words(n):
    return " ".join(f"w{i}" for i in range(n))


@pytest.mark.parametrize(
    "n, expected",
    [
        (0, (False, reasons.TOO_FEW_WORDS)),
        (2, (False, reasons.TOO_FEW_WORDS)),  # paper 3: fewer than 3 unigrams -> dropped
        (3, (True, None)),  # 3 kept
        (20, (True, None)),  # 20 kept
        (21, (False, reasons.TOO_MANY_WORDS)),  # paper 3: more than 20 unigrams -> dropped
    ],
)
def test_word_count_boundaries(n, expected):
    assert filter_word_count(words(n)) == expected


def test_punctuation_and_emoji_are_not_words():
    assert filter_word_count("cat !!! 🐱 ---") == (False, reasons.TOO_FEW_WORDS)
    assert filter_word_count("a red-bus") == (True, None)  # a, red, bus


def test_custom_bounds():
    assert filter_word_count("one two", min_words=2, max_words=2) == (True, None)
    assert filter_word_count("one two three", min_words=1, max_words=2) == (False, reasons.TOO_MANY_WORDS)
