import random

import pytest
from tensorflow_text.python.ops import bert_tokenizer

from pipeline.basic_words import FAST_PATH_RANGES, basic_words
from pipeline.vocab import basic_tokenize

FAST_PATH_CHARS = [chr(cp) for start, end in FAST_PATH_RANGES for cp in range(start, end)]


@pytest.fixture(scope="module")
def tokenizer():
    return bert_tokenizer.BasicTokenizer(lower_case=True)


def test_every_fast_path_character_alone_and_between_letters(tokenizer):
    texts = FAST_PATH_CHARS + [f"Ab{ch}cD" for ch in FAST_PATH_CHARS]
    expected = [[w.decode() for w in words] for words in tokenizer.tokenize(texts).to_list()]
    assert [basic_words(t) for t in texts] == expected


def test_random_latin_strings_match_bert_basic_tokenizer(tokenizer):
    rng = random.Random(7)
    alphabet = FAST_PATH_CHARS + [" "] * 20 + list("abcXYZ") * 5
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))) for _ in range(3000)]
    texts += ["Castilla y León", "Rios de España", "Héllo, RED-bus!", "don't  stop\tme",
              "Côte d’Ivoire", "Japanese “here” button", "a\u200bb\u2028c — d…"]
    expected = [[w.decode() for w in words] for words in tokenizer.tokenize(texts).to_list()]
    assert [basic_words(t) for t in texts] == expected


def test_other_characters_go_to_the_real_tokenizer(tokenizer):
    assert basic_words("一只猫") is None
    assert basic_words("a \u0180") is None and basic_words("a \u2070") is None
    assert basic_tokenize(["Héllo, RED-bus!", "一只猫"], tokenizer) == [
        "hello", ",", "red", "-", "bus", "!", "一", "只", "猫"]
