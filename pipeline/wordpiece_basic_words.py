"""Words of any text as BERT's BasicTokenizer(lower_case=True) splits them, in pure Python: the
vocabulary step's fallback when tensorflow_text is not installed (the `[curate]` extra).

pipeline/basic_words.py is exact for Latin texts (and General Punctuation); other texts go to
tensorflow_text's BasicTokenizer when it can be imported. Without it they come here: the same
steps (tensorflow_text/python/ops/bert_tokenizer.py) with Python's `unicodedata` instead of ICU:
NFKC_Casefold (as NFKC, casefold, NFKC, with ICU's removal of Default_Ignorable_Code_Point
characters), NFD, remove \\p{Mn}, \\p{Cc}|\\p{Cf} -> space, split on RE2 `\\s+` (ASCII
whitespace) keeping ASCII punctuation/symbols, \\p{P} and the CJK ideograph blocks as one-character
words. Differences left: Python's Unicode version (3.11: Unicode 14) against the ICU data of the
tensorflow_text build, and NFKC_Casefold's few mappings that are not NFKC + casefold. The trainer
tokenizes with the real BasicTokenizer, so a word split differently here only changes which
counts the learner sees (tests/pipeline/test_wordpiece_basic_words.py compares the two on texts of
many scripts).
"""
import functools
import unicodedata
from typing import List

from pipeline.basic_words import basic_words

# Default_Ignorable_Code_Point (DerivedCoreProperties.txt): removed by ICU's NFKC_Casefold.
_IGNORABLE_RANGES = ((0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160),
                     (0x17B4, 0x17B5), (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E),
                     (0x2060, 0x206F), (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF),
                     (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A),
                     (0xE0000, 0xE0FFF))
# bert_tokenizer._DELIM_REGEX's CJK blocks: each character is a word.
_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
               (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))
_RE2_SPACE = frozenset(" \t\n\f\r")  # RE2's \s (no \v)


def _in(ranges, cp: int) -> bool:
    return any(a <= cp <= b for a, b in ranges)


def _is_kept_delimiter(ch: str) -> bool:
    cp = ord(ch)
    ascii_delim = (0x21 <= cp <= 0x2F or 0x3A <= cp <= 0x40 or 0x5B <= cp <= 0x60
                   or 0x7B <= cp <= 0x7E)
    return ascii_delim or unicodedata.category(ch).startswith("P") or _in(_CJK_RANGES, cp)


@functools.lru_cache(maxsize=1 << 16)
def _char_map(ch: str) -> str:
    """What one character of the input becomes before splitting on " "."""
    if _in(_IGNORABLE_RANGES, ord(ch)):
        return ""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", ch).casefold())
    out = []
    for c in unicodedata.normalize("NFD", folded):
        if _in(_IGNORABLE_RANGES, ord(c)):
            continue
        category = unicodedata.category(c)
        if category == "Mn":
            continue
        if category in ("Cc", "Cf") or c in _RE2_SPACE:
            out.append(" ")
        elif _is_kept_delimiter(c):
            out.append(f" {c} ")
        else:
            out.append(c)
    return "".join(out)


def basic_words_any(text: str) -> List[str]:
    """BasicTokenizer(lower_case=True)'s words of `text`: exact (basic_words) for Latin texts,
    per character as described above otherwise. Normalization is applied per character except
    for the NFKC composition of a base with its following combining marks, done on the whole
    text first so that e.g. Hangul jamo sequences and decomposed accents compose as in ICU."""
    words = basic_words(text)
    if words is not None:
        return words
    text = unicodedata.normalize("NFKC", text)
    return [word for word in "".join(map(_char_map, text)).split(" ") if word]
