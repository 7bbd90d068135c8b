"""Normalization of alt-texts and the paper's "unigrams" (see docs/TEXT_NORMALIZATION.md).

`normalize_text` is what is stored as `text` in the curated Examples and what every text filter,
the corpus counts and the vocabulary see; the raw alt-text is kept next to it as `text/raw`.
Steps, in order:
  1. HTML entities unescaped (`&amp;` -> `&`, `&#233;` -> `é`), repeatedly (at most 3 rounds) so
     double-escaped web text (`&amp;quot;`) is fixed too;
  2. Unicode NFKC (compatibility composition): full-width letters, ligatures (`ﬁ`), no-break
     spaces and other presentation variants become their plain form, so that the same word is
     counted as one token by the rare-token filter (runs of over 30 combining marks are put in
     canonical order first, in n log n: the same result, see _canonically_ordered);
  3. HTML tags (`<b>`, `</a>`, `<br/>`, `<!-- -->`) replaced by a space; a `<` not followed by
     a letter or `/` (as in `I <3 NY`, `a < b`) is text and kept. An unclosed `<!--` is a comment
     to the end of the text, as browsers read it (HTML's eof-in-comment), so the rest is removed;
  4. control and invisible format characters removed (Unicode Cc that are not whitespace, Cf
     except the zero-width (non-)joiners used inside words and emoji sequences, lone surrogates);
  5. every run of Unicode whitespace (incl. tabs, newlines, U+2028) collapsed to one space and the
     ends stripped.
Case is kept (`text`); the unigrams used by filters are lower-cased.

Every step is linear in the length of the text, whatever it holds (issue #10: a regex
`<!--.*?-->` rescanned the rest of the text from every unclosed `<!--`, and CPython's NFKC sorts a
run of combining marks by insertion, quadratic in the run's length). Captions come from the web:
one adversarial caption must not stall a worker.
"""
import functools
import html
import re
import unicodedata
from typing import List

# A comment opening, or a whole tag. The comment's end is found with str.find (see _strip_tags), not
# with `<!--.*?-->`, which rescans to the end of the text from every unclosed `<!--`. The tag part
# is linear: `[^<>]*` stops at the next `<`, so a failed attempt never looks past the next start.
_TAG_OR_COMMENT = re.compile(r"<!--|</?[A-Za-z][A-Za-z0-9:-]*(?:\s[^<>]*)?/?>")
_COMMENT_OPEN, _COMMENT_CLOSE = "<!--", "-->"
_KEPT_FORMAT_CHARS = {"\u200c", "\u200d"}  # zero-width non-joiner / joiner
_APOSTROPHES = {"'", "\u2019"}
_MAX_UNESCAPE_ROUNDS = 3


def _unescape_html(text: str) -> str:
    for _ in range(_MAX_UNESCAPE_ROUNDS):
        unescaped = html.unescape(text)
        if unescaped == text:
            break
        text = unescaped
    return text


def _mark_run_pattern() -> "re.Pattern[str]":
    """Runs of more than _SHORT_MARK_RUN characters that may be combining marks: the BMP characters
    whose NFKD is only marks (canonical combining class > 0: accents, Zalgo marks, U+0F73, U+FF9E),
    and every non-BMP character (a superset, so the class stays one bitmap lookup per character)."""
    members = [cp for cp in range(0x10000)
               if (unicodedata.combining(chr(cp)) or unicodedata.decomposition(chr(cp)))
               and all(unicodedata.combining(c) for c in unicodedata.normalize("NFKD", chr(cp)))]
    ranges, first = [], members[0]
    for prev, cp in zip(members, members[1:] + [-1]):
        if cp != prev + 1:
            ranges.append(f"\\u{first:04x}-\\u{prev:04x}")
            first = cp
    return re.compile("[%s\\U00010000-\\U0010ffff]{%d,}" % ("".join(ranges), _SHORT_MARK_RUN + 1))


# Runs of this many combining marks or fewer are left to NFKC as they are (bounded cost each).
_SHORT_MARK_RUN = 30  # Unicode's stream-safe limit (UAX #15, section 13): real text stays below
_LONG_MARK_RUN = _mark_run_pattern()


def _canonically_ordered(run: re.Match) -> str:
    """NFKD, then canonical ordering (a stable sort of each run of marks by combining class): what
    NFKC does first, but in n log n rather than with CPython's insertion sort. NFKC then finds the
    marks already ordered and composes them in linear time, to exactly the same result."""
    out: List[str] = []
    marks: List[str] = []
    for ch in run.group():
        for c in unicodedata.normalize("NFKD", ch):
            if unicodedata.combining(c):
                marks.append(c)
            else:
                out.extend(sorted(marks, key=unicodedata.combining))
                marks = []
                out.append(c)
    out.extend(sorted(marks, key=unicodedata.combining))
    return "".join(out)


def _nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", _LONG_MARK_RUN.sub(_canonically_ordered, text))


def _strip_tags(text: str) -> str:
    """Tags and comments replaced by a space, in one left-to-right scan (what a single
    `<!--.*?-->|tag` regex did, in linear time); an unclosed comment removes the rest."""
    pieces, pos = [], 0
    while True:
        found = _TAG_OR_COMMENT.search(text, pos)
        if found is None:
            pieces.append(text[pos:])
            break
        pieces.append(text[pos:found.start()])
        pos = found.end()
        if found.group() == _COMMENT_OPEN:
            close = text.find(_COMMENT_CLOSE, pos)
            if close < 0:
                pieces.append("")  # the comment's space; nothing after an unclosed comment is text
                break
            pos = close + len(_COMMENT_CLOSE)
    return " ".join(pieces)


@functools.lru_cache(maxsize=65536)
def _char_class(ch: str) -> str:
    """'w' word char, 'c' CJK ideograph, 'x' removed, 's' whitespace, 'o' other (punct, symbols)."""
    if ch.isspace():
        return "s"
    category = unicodedata.category(ch)
    if category == "Cc" or category == "Cs" or (category == "Cf" and ch not in _KEPT_FORMAT_CHARS):
        return "x"
    if _is_cjk(ord(ch)):
        return "c"
    if category[0] in "LNM":  # letters, digits/numbers, combining marks (Devanagari, Thai, ...)
        return "w"
    return "o"


def _is_cjk(cp: int) -> bool:
    # The CJK ideograph blocks BERT's BasicTokenizer splits into single characters.
    return (
        0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


def normalize_text(raw: str) -> str:
    """Normalized alt-text: entities, NFKC, tags, control chars, whitespace (see module doc)."""
    text = _unescape_html(raw)
    text = _nfkc(text)
    text = _strip_tags(text)
    text = "".join(ch for ch in text if _char_class(ch) != "x")
    return " ".join(text.split())


def unigrams(text: str) -> List[str]:
    """The paper's unigrams of a (normalized) text, lower-cased.

    A unigram is a maximal run of letters, digits and combining marks, with apostrophes kept inside
    a word and unified to `'` (`don't`, `o’clock` -> `o'clock`); every CJK ideograph is a unigram of its own (as BERT splits them).
    Punctuation, symbols and emoji separate words and are not words: `red-bus, 2021!` ->
    [`red`, `bus`, `2021`].
    """
    words: List[str] = []
    current: List[str] = []
    length = len(text)
    for i, ch in enumerate(text):
        kind = _char_class(ch)
        if kind == "w":
            current.append(ch)
            continue
        if (ch in _APOSTROPHES and current and i + 1 < length
                and _char_class(text[i + 1]) == "w"):
            current.append("'")  # one apostrophe form, so don’t and don't count as one token
            continue
        if current:
            words.append("".join(current).lower())
            current = []
        if kind == "c":
            words.append(ch)
    if current:
        words.append("".join(current).lower())
    return words


def bigrams(words: List[str]) -> List[str]:
    """Adjacent unigram pairs joined by one space: [a, b, c] -> [`a b`, `b c`]."""
    return [f"{a} {b}" for a, b in zip(words, words[1:])]
