"""Text filters on a single alt-text (paper section 3, "text-based filtering").

Corpus-level text filters (alt-texts shared by many images, rare unigrams/bigrams) need counts
over the whole dataset and live in pipeline/corpus_filters.py.
"""
from typing import Optional, Tuple

from pipeline import reasons
from pipeline.text_normalize import unigrams

# Paper 3: "we discard alt-texts that are either too short (<3 unigrams) or too long (>20 unigrams)".
# So 3 and 20 unigrams are kept; 2 and 21 are dropped.
MIN_WORDS = 3
MAX_WORDS = 20


def filter_word_count(
    text: str, min_words: int = MIN_WORDS, max_words: int = MAX_WORDS
) -> Tuple[bool, Optional[str]]:
    """(keep, reason) for the number of unigrams of a normalized alt-text.

    Drops with reasons.TOO_FEW_WORDS when it has fewer than `min_words` unigrams and with
    reasons.TOO_MANY_WORDS when it has more than `max_words`; both bounds are inclusive-kept.
    Unigrams are counted with text_normalize.unigrams (punctuation and emoji are not words).
    """
    count = len(unigrams(text))
    if count < min_words:
        return False, reasons.TOO_FEW_WORDS
    if count > max_words:
        return False, reasons.TOO_MANY_WORDS
    return True, None
