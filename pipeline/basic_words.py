"""Words of a text as tensorflow_text's BERT BasicTokenizer(lower_case=True) splits them, without
TensorFlow, for texts made only of Latin characters (below U+0180: ASCII, Latin-1, Latin Extended-A)
and General Punctuation (U+2000-U+206F: typographic quotes, dashes, spaces, zero-width marks).

Why: the vocabulary step needs only these words, and importing TensorFlow costs ~5 CPU-s per
worker. Texts with any other character return None and go to the real tokenizer
(pipeline/vocab.py, TensorFlow imported then), so the words are the same for every text.

What BasicTokenizer does (tensorflow_text/python/ops/bert_tokenizer.py): NFKC_Casefold (ICU),
NFD, remove \\p{Mn}, replace \\p{Cc}|\\p{Cf} by a space, split on RE2 `\\s+` (ASCII whitespace)
and keep ASCII punctuation/symbols and \\p{P} as one-character words. In these ranges every
character maps independently of its neighbours (no combining marks), so a per-character table is
exact, except for the default-ignorable characters, which NFKC_Casefold removes (_REMOVED);
tests/pipeline/test_basic_words.py checks it against BasicTokenizer for every character of the
ranges, alone and between letters, and for random strings.
"""
import functools
import re
import unicodedata
from typing import List, Optional

FAST_PATH_RANGES = ((0x1, 0x180), (0x2000, 0x2070))  # [start, end) code points handled here
_OUTSIDE_FAST_PATH = re.compile(
    "[^" + "".join(f"\\U{a:08x}-\\U{b - 1:08x}" for a, b in FAST_PATH_RANGES) + "]")
# Default_Ignorable_Code_Point characters of the ranges: ICU's NFKC_Casefold removes them (soft
# hyphen, zero-width space/joiners, bidi marks and embeddings, invisible operators, U+2065).
_REMOVED = frozenset(map(chr, [0xAD, *range(0x200B, 0x2010), *range(0x202A, 0x202F),
                               *range(0x2060, 0x2070)]))


def _is_delimiter(ch: str) -> bool:
    cp = ord(ch)
    ascii_delim = (0x21 <= cp <= 0x2F or 0x3A <= cp <= 0x40 or 0x5B <= cp <= 0x60
                   or 0x7B <= cp <= 0x7E)
    return ascii_delim or unicodedata.category(ch).startswith("P")


@functools.lru_cache(maxsize=None)
def _char_map(ch: str) -> str:
    """What one character becomes before splitting on " " (delimiters get spaces around)."""
    if ch in _REMOVED:
        return ""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", ch).casefold())
    out = []
    for c in unicodedata.normalize("NFD", folded):
        category = unicodedata.category(c)
        if category == "Mn":
            continue
        if category in ("Cc", "Cf") or c in " \t\n\r\f":
            out.append(" ")
        elif _is_delimiter(c):
            out.append(f" {c} ")
        else:
            out.append(c)
    return "".join(out)


def basic_words(text: str) -> Optional[List[str]]:
    """The BasicTokenizer words of `text`, or None when `text` has a character outside
    FAST_PATH_RANGES (or U+0000)."""
    if not text.isascii() and _OUTSIDE_FAST_PATH.search(text):
        return None
    return [word for word in "".join(map(_char_map, text)).split(" ") if word]
