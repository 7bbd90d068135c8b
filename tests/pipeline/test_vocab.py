import apache_beam as beam
import pytest
import tensorflow as tf
import tensorflow_text as tf_text
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from tensorflow_text.python.ops import bert_tokenizer

from pipeline.vocab import (
    BERT_RESERVED_TOKENS,
    BuildVocab,
    alphabet_bound,
    basic_tokenize,
    learn_wordpiece,
    prune_word_counts,
)

WORD_COUNTS = {"red": 30, "bus": 20, "buses": 12, "car": 15, "cars": 11, "blue": 10, "the": 50}


def test_basic_tokenize_matches_bert_basic_tokenizer():
    tokenizer = bert_tokenizer.BasicTokenizer(lower_case=True)
    assert basic_tokenize(["Héllo, RED-bus!", "一只猫"], tokenizer) == [
        "hello", ",", "red", "-", "bus", "!", "一", "只", "猫"]
    assert basic_tokenize([], tokenizer) == []


def test_learn_wordpiece_exact_output_reserved_tokens_first():
    vocab = learn_wordpiece(WORD_COUNTS, 40)
    assert vocab == [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
        "a", "b", "c", "d", "e", "h", "l", "r", "s", "t", "u",
        "the", "red", "bus", "car", "buses", "cars", "blue",
        "##a", "##b", "##c", "##d", "##e", "##h", "##l", "##r", "##s", "##t", "##u"]


@pytest.mark.parametrize("vocab_size", [5, 12, 25, 40])
def test_learn_wordpiece_respects_the_size_cap(vocab_size):
    vocab = learn_wordpiece(WORD_COUNTS, vocab_size)
    assert len(vocab) <= vocab_size
    assert vocab[:5] == list(BERT_RESERVED_TOKENS)
    assert len(set(vocab)) == len(vocab)


def test_learn_wordpiece_edge_cases():
    assert learn_wordpiece({}, 10) == list(BERT_RESERVED_TOKENS)
    with pytest.raises(ValueError):
        learn_wordpiece(WORD_COUNTS, 3)
    assert alphabet_bound(100_000, BERT_RESERVED_TOKENS) == 1000
    assert alphabet_bound(40, BERT_RESERVED_TOKENS) == 11


def test_prune_word_counts():
    assert prune_word_counts([("a", 3), ("b", 1)], {"min_count_kept": 2}) == {"a": 3}


def test_build_vocab_writes_a_file_bert_tokenizer_loads(tmp_path):
    texts = ["A red bus", "Red buses!", "the blue car", "The cars", "a red car"] * 12
    path = str(tmp_path / "vocab.txt")
    with TestPipeline(runner=FnApiRunner()) as p:
        sizes = p | beam.Create(texts) | BuildVocab(vocab_size=60, output_path=path)
        assert_that(sizes, equal_to([{"requested": 60, "achieved": 36, "words_used": 9,
                                        "min_piece_count": 10}]))
    vocab = open(path, encoding="utf-8").read().splitlines()
    assert vocab[:5] == list(BERT_RESERVED_TOKENS)
    assert len(vocab) == 36 and len(set(vocab)) == 36
    tokenizer = tf_text.BertTokenizer(path, lower_case=True, token_out_type=tf.string)
    pieces = tokenizer.tokenize(["A red bus", "The blue cars!"]).merge_dims(-2, -1).to_list()
    assert pieces == [[b"a", b"red", b"bus"], [b"the", b"blue", b"cars", b"!"]]


def test_min_piece_count_caps_small_corpus_vocab():
    # Every word seen 4 times: at the default lowest piece count (10) only characters survive,
    # at 2 the whole words are learned too.
    counts = {"lemon": 4, "pear": 4, "arrow": 4, "theme": 4}
    default = learn_wordpiece(counts, vocab_size=200)
    lowered = learn_wordpiece(counts, vocab_size=200, lower_thresh=2)
    assert not {"lemon", "pear", "arrow", "theme"} & set(default)
    assert {"lemon", "pear", "arrow", "theme"} <= set(lowered)
