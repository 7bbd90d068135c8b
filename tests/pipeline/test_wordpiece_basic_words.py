"""pipeline/wordpiece_basic_words.py (BasicTokenizer without tensorflow_text) against the real
BasicTokenizer(lower_case=True), on texts of many scripts and on random characters."""
import random

import pytest

from pipeline.wordpiece_basic_words import basic_words_any

TEXTS = [
    "Привет, МИР! Ёлка й", "Ελληνικά ΣΟΦΙΑ σοφίας ς", "東京タワーの夜景 2020年", "한국어 텍스트입니다",
    "مرحبا بالعالم، كيف حالك؟", "हिन्दी भाषा में स्वागत", "ภาษาไทย สวัสดี", "Straße ﬁne ǅemal Ⅻ ①",
    "emoji 😀👍🏽 ok", "ｆｕｌｌｗｉｄｔｈ　ＡＢＣ１２３", "Ǆ ǈ İstanbul", "ŉ ǰ ẞ", "a\u0301b\u0308 e\u0300",
    "\u1112\u1161\u11ab 한", "\u2126 \u212b \u212a", "日本語、句読点。「引用」", "עברית שלום",
    "Tiếng Việt có dấu", "\ufdfa \ufdfd", "x\u00a0y\u2003z", "A\u200bB\ufeffC\u034fD",
    "tab\tnew\nline\x0bvt\x1cfs", "\U00020000\U0002a700 \uf900", "Ⓐⓑ ㎏ ㍻ ¼",
]


def _random_texts(n, seed):
    rng = random.Random(seed)
    pool = ([chr(c) for c in range(0x80, 0x3100)] + [chr(c) for c in range(0xA000, 0xA100)]
            + [chr(c) for c in range(0xAC00, 0xAC80)] + [chr(c) for c in range(0xF900, 0xFFFE)]
            + [chr(c) for c in range(0x1D400, 0x1D500)] + [chr(c) for c in range(0x1F300, 0x1F700)])
    pool = [c for c in pool if not 0xD800 <= ord(c) <= 0xDFFF]
    return ["".join(rng.choice(pool + ["a", " ", "B"] * 30) for _ in range(rng.randint(1, 16)))
            for _ in range(n)]


def test_same_words_as_bert_basic_tokenizer():
    pytest.importorskip("tensorflow_text", reason="the reference BasicTokenizer is "
                                                  "tensorflow_text's")
    from tensorflow_text.python.ops import bert_tokenizer

    texts = TEXTS + _random_texts(1500, 0)
    tokenizer = bert_tokenizer.BasicTokenizer(lower_case=True)
    expected = [[w.decode("utf-8") for w in words] for words in tokenizer.tokenize(texts).to_list()]
    differing = [(text, want, basic_words_any(text))
                 for text, want in zip(texts, expected) if basic_words_any(text) != want]
    assert not differing[:5], f"{len(differing)} of {len(texts)} texts differ"


def test_known_words():
    assert basic_words_any("Héllo, RED-bus!") == ["hello", ",", "red", "-", "bus", "!"]
    assert basic_words_any("一只猫 Привет") == ["一", "只", "猫", "привет"]
    assert basic_words_any("Straße\u200bZZ") == ["strassezz"]  # zero-width space removed
    assert basic_words_any("Ёлка\u200bЙ") == ["елкаи"]
