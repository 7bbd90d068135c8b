"""Words of a text as tensorflow_text's BERT BasicTokenizer(lower_case=True) splits them, without
TensorFlow, for texts made only of Latin characters (below U+0180: ASCII, Latin-1, Latin Extended-A).

Why: the vocabulary step needs only these words, and importing TensorFlow costs ~5 CPU-s per
worker. Texts with any other character return None and go to the real tokenizer
(pipeline/vocab.py, TensorFlow imported then), so the words are the same for every text.

What BasicTokenizer does (tensorflow_text/python/ops/bert_tokenizer.py): NFKC_Casefold (ICU),
NFD, remove \\p{Mn}, replace \\p{Cc}|\\p{Cf} by a space, split on RE2 `\\s+` (ASCII whitespace)
and keep ASCII punctuation/symbols and \\p{P} as one-character words. Below U+0180 every character
maps independently of its neighbours (no combining marks in that range), so a per-character table
is exact; tests/pipeline/test_basic_words.py checks it against BasicTokenizer for every character
of the range and for random strings.
"""
import functools
import unicodedata
from typing import List, Optional

FAST_PATH_LIMIT = 0x180  # code points below this are handled here
_SOFT_HYPHEN = "\u00ad"  # Default_Ignorable: NFKC_Casefold removes it


def _is_delimiter(ch: str) -> bool:
    cp = ord(ch)
    ascii_delim = (0x21 <= cp <= 0x2F or 0x3A <= cp <= 0x40 or 0x5B <= cp <= 0x60
                   or 0x7B <= cp <= 0x7E)
    return ascii_delim or unicodedata.category(ch).startswith("P")


@functools.lru_cache(maxsize=None)
def _char_map(ch: str) -> str:
    """What one character becomes before splitting on " " (delimiters get spaces around)."""
    if ch == _SOFT_HYPHEN:
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
    """The BasicTokenizer words of `text`, or None when `text` has a character >= U+0180."""
    if not text.isascii() and max(map(ord, text)) >= FAST_PATH_LIMIT:
        return None
    return [word for word in "".join(map(_char_map, text)).split(" ") if word]
