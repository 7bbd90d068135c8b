import random
import unicodedata

import pytest

from pipeline.text_normalize import bigrams, normalize_text, unigrams


@pytest.mark.parametrize(
    "raw, expected",
    [
        # HTML entities, named and numeric, and double-escaped web text
        ("Tom &amp; Jerry", "Tom & Jerry"),
        ("caf&#233; &#x263A;", "café ☺"),
        ("&amp;quot;quoted&amp;quot;", '"quoted"'),
        ("Hello&amp;nbsp;World", "Hello World"),
        # Unicode NFKC: full-width, ligatures, no-break space; NFC composition of accents
        ("ＡＬＩＧＮ ﬁne", "ALIGN fine"),
        ("cafe\u0301", "café"),
        ("a\u00a0b", "a b"),
        # tags removed (replaced by a space), text that only looks like a tag kept
        ("<b>bold</b> text", "bold text"),
        ("line<br/>break", "line break"),
        ('<a href="x">link</a><!-- c -->', "link"),
        # an unclosed comment runs to the end of the text (as in browsers): the rest is removed
        ("kept <!-- dropped <b>to the end", "kept"),
        ("a <!-- c --> b <!-- d", "a b"),
        ("<!-- a <!-- b --> c -->", "c -->"),
        ("a &lt;!-- escaped", "a"),
        ("I <3 NY", "I <3 NY"),
        ("a < b > c", "a < b > c"),
        # escaped tags are unescaped then stripped
        ("&lt;script&gt;alert(1)&lt;/script&gt; cat", "alert(1) cat"),
        # control and invisible format chars removed, joiners kept
        ("a\x00b\x07c", "abc"),
        ("zero\u200bwidth\ufeff", "zerowidth"),
        ("soft\u00adhyphen", "softhyphen"),
        ("👨\u200d👩", "👨\u200d👩"),
        ("bad\udcff utf8", "bad utf8"),  # lone surrogate (surrogateescape-decoded bytes) removed
        ("Mikol\x9a Ale\x9a", "Mikol Ale"),  # C1 control chars (cp1252 mojibake in real titles)
        # whitespace collapsed and stripped
        ("  many \t spaces\n\nand\r\nlines \u2028 ", "many spaces and lines"),
        ("", ""),
        (" \t\n ", ""),
        # case kept
        ("Red Bus", "Red Bus"),
    ],
)
def test_normalize_text(raw, expected):
    assert normalize_text(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["Tom &amp; Jerry", "&amp;quot;x&amp;quot;", "<b>b</b>", "I <3 NY", "ＡＢ ﬁ", " a\tb ",
     "a <!-- b", "a" + "\u0301\u0316" * 40],
)
def test_normalize_text_is_idempotent(raw):
    once = normalize_text(raw)
    assert normalize_text(once) == once


# Issue #10: 160 kB adversarial captions of every tag shape. No timings asserted; these used to
# take seconds to minutes (quadratic), they now take milliseconds.
N = 160_000


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("<!--" * (N // 4), ""),
        ("a <!--" + "x" * N, "a"),
        ("<!-- --" * (N // 7), ""),
        ("<!-->" * (N // 5), ""),
        ("<!-- c -->" * (N // 10) + "end", "end"),
        ("<a " * (N // 3), " ".join(["<a"] * (N // 3))),
        ("<a\t" * (N // 3), " ".join(["<a"] * (N // 3))),
        ("</a " * (N // 4), " ".join(["</a"] * (N // 4))),
        ("<a b" * (N // 4), "<a b" * (N // 4)),
        ("<a/ " * (N // 4), " ".join(["<a/"] * (N // 4))),
        ("<a:b-c x=" * (N // 9), " ".join(["<a:b-c"] + ["x=<a:b-c"] * (N // 9 - 1) + ["x="])),
        ("<a" + " " * N + "x", "<a x"),
        ("<a <b " * (N // 6), " ".join(["<a", "<b"] * (N // 6))),
        ("<b>x</b>" * (N // 8), " ".join(["x"] * (N // 8))),
        ("&lt;!--" * (N // 7), ""),
        # long runs of combining marks (NFKC's canonical reordering), composed as NFKC does
        ("a" + "\u0301\u0316" * (N // 2),
         "\u00e1" + "\u0316" * (N // 2) + "\u0301" * (N // 2 - 1)),
        ("a" + "\u0301" * (N // 2) + "\u0316" * (N // 2),
         "\u00e1" + "\u0316" * (N // 2) + "\u0301" * (N // 2 - 1)),
        # U+0F73 is 0F71 0F72 and is not recomposed (a composition exclusion)
        ("a" + "\u0f73" * N, "a" + "\u0f71" * N + "\u0f72" * N),
    ],
)
def test_adversarial_160kb_inputs_normalize_exactly(raw, expected):
    assert normalize_text(raw) == expected


def test_long_mark_runs_normalize_as_plain_nfkc():
    # The linear handling of long runs of marks must give exactly NFKC's result.
    rng = random.Random(10)
    marks = ("\u0301\u0316\u0300\u05b0\u0f73\u0f71\u0f72\u0344\uff9e\u1dc0"
             "\U0001d165\U0001d16d")
    bases = "ae\u00e9\u1100\uac00\U0001d400"
    for _ in range(50):
        raw = "".join(rng.choice(marks) if rng.random() < 0.95 else rng.choice(bases)
                      for _ in range(rng.randint(1, 400)))
        assert normalize_text(raw) == unicodedata.normalize("NFKC", raw)


def test_unescaping_is_bounded():
    # at most 3 rounds: a pathologically nested escape is not unescaped forever
    assert normalize_text("&amp;amp;amp;amp;lt;") == "&amp;lt;"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("A red bus", ["a", "red", "bus"]),
        ("red-bus, 2021!", ["red", "bus", "2021"]),
        ("don't stop o’clock", ["don't", "stop", "o'clock"]),
        ("dogs' toys 'quoted'", ["dogs", "toys", "quoted"]),
        ("3.5 R2-D2", ["3", "5", "r2", "d2"]),
        ("一只猫 Cat", ["一", "只", "猫", "cat"]),
        ("हिन्दी भाषा", ["हिन्दी", "भाषा"]),
        ("Ünïcödé ÉCOLE", ["ünïcödé", "école"]),
        ("👍 🐱🐱 ... --", []),
        ("snake_case", ["snake", "case"]),
        ("", []),
    ],
)
def test_unigrams(text, expected):
    assert unigrams(text) == expected


def test_bigrams():
    assert bigrams(["a", "red", "bus"]) == ["a red", "red bus"]
    assert bigrams(["one"]) == []
    assert bigrams([]) == []
