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
    ["Tom &amp; Jerry", "&amp;quot;x&amp;quot;", "<b>b</b>", "I <3 NY", "ＡＢ ﬁ", " a\tb "],
)
def test_normalize_text_is_idempotent(raw):
    once = normalize_text(raw)
    assert normalize_text(once) == once


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
