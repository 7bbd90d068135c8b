import itertools

import apache_beam as beam
import pytest
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline.vocab import (
    BERT_RESERVED_TOKENS,
    BuildVocab,
    alphabet_bound,
    basic_tokenize,
    learn_and_write,
    learn_wordpiece,
    learn_wordpiece_traced,
    prune_word_counts,
    vocab_summary,
)

WORD_COUNTS = {"red": 30, "bus": 20, "buses": 12, "car": 15, "cars": 11, "blue": 10, "the": 50}


def _tensorflow_text():
    """(tensorflow, tensorflow_text): the trainer's tokenizer, the reference of these checks;
    skipped where they are not installed (the [curate] install learns without them)."""
    reason = "tensorflow_text is not installed: the trainer's BertTokenizer is not available"
    return pytest.importorskip("tensorflow", reason=reason), \
        pytest.importorskip("tensorflow_text", reason=reason)


def test_basic_tokenize_matches_bert_basic_tokenizer():
    _tensorflow_text()
    from tensorflow_text.python.ops import bert_tokenizer

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
        assert_that(sizes, equal_to([{
            "requested": 60, "achieved": 36, "limited_by": "corpus",
            "limited_by_explanation": "all 9 distinct words learned from are seen at least 11 "
                                      "times, the lowest piece count tried, so each is a whole "
                                      "piece of the 36 entries: the kept texts have too few "
                                      "distinct words for 60",
            "min_piece_count": 10, "words_counted": 9, "words_at_min_piece_count": 9,
            "words_used": 9, "words_outside_alphabet": 0, "words_learned_from": 9,
            "rarest_word_count": 12, "characters_seen": 12, "max_unique_chars": 18, "alphabet": 12,
            "search_lower": 12, "search_upper": 36, "search_steps": [[11, 36]],
            "final_threshold": 11, "words_at_final_threshold": 9, "learned": 36}]))
    vocab = open(path, encoding="utf-8").read().splitlines()
    assert vocab[:5] == list(BERT_RESERVED_TOKENS)
    assert len(vocab) == 36 and len(set(vocab)) == 36
    tf, tf_text = _tensorflow_text()
    tokenizer = tf_text.BertTokenizer(path, lower_case=True, token_out_type=tf.string)
    pieces = tokenizer.tokenize(["A red bus", "The blue cars!"]).merge_dims(-2, -1).to_list()
    assert pieces == [[b"a", b"red", b"bus"], [b"the", b"blue", b"cars", b"!"]]


def test_learned_vocab_is_valid_for_the_trainers_bert_tokenizer(tmp_path):
    # Every character of the words learned from is in vocab.txt with and without "##", so
    # BertTokenizer(vocab, lower_case=True) never maps them to [UNK], even the rare ones.
    counts = {"naive": 12, "cafe": 30, "猫": 11, "strasse": 15, "xylophone": 3, "zebra": 40,
              "привет": 25}
    vocab = learn_wordpiece(counts, 80)
    assert vocab[:5] == list(BERT_RESERVED_TOKENS)
    for char in set("".join(counts)):
        assert char in vocab and "##" + char in vocab
    path = tmp_path / "vocab.txt"
    path.write_text("".join(token + "\n" for token in vocab), encoding="utf-8")
    tf, tf_text = _tensorflow_text()
    tokenizer = tf_text.BertTokenizer(str(path), lower_case=True, token_out_type=tf.string)
    pieces = tokenizer.tokenize(list(counts)).merge_dims(-2, -1).to_list()
    assert all(b"[UNK]" not in word for word in pieces)
    assert pieces[1] == [b"cafe"] and pieces[4][0] == b"x" and pieces[4][1].startswith(b"##")


def test_min_piece_count_caps_small_corpus_vocab():
    # Every word seen 4 times: at the default lowest piece count (10) only characters survive,
    # at 2 the whole words are learned too.
    counts = {"lemon": 4, "pear": 4, "arrow": 4, "theme": 4}
    default = learn_wordpiece(counts, vocab_size=200)
    lowered = learn_wordpiece(counts, vocab_size=200, lower_thresh=2)
    assert not {"lemon", "pear", "arrow", "theme"} & set(default)
    assert {"lemon", "pear", "arrow", "theme"} <= set(lowered)


# stats.json's vocab section: why the vocabulary has the size it has (issue #9, point 5).
RESERVED = list(BERT_RESERVED_TOKENS)
# WORD_COUNTS plus four words rarer than 10: "reds" 6, "lemon" 4, "pear" 3, "arrow" 2.
RARER = dict(WORD_COUNTS, reds=6, lemon=4, pear=3, arrow=2)
# 25 four-letter words from 5 syllables, counts 2, 5, ..., 74.
SYLLABLES = {a + b: 2 + 3 * i for i, (a, b) in
             enumerate(itertools.product(["ba", "ko", "mi", "tu", "re"], repeat=2))}


def _learn(tmp_path, counts, vocab_size, min_piece_count, **kwargs):
    path = tmp_path / "vocab.txt"
    summary = learn_and_write(counts, vocab_size, BERT_RESERVED_TOKENS, str(path),
                              min_piece_count, **kwargs)
    return summary, path.read_text(encoding="utf-8").splitlines()


def test_vocab_limited_by_min_piece_count(tmp_path):
    summary, vocab = _learn(tmp_path, RARER, 200, 10)
    assert summary == {
        "requested": 200, "achieved": 44, "limited_by": "min_piece_count",
        "limited_by_explanation": "every word piece seen at least 10 times fits in 44 entries (7 "
                                  "of the 11 distinct words are seen that often); lower "
                                  "--vocab_min_piece_count (e.g. 2) to allow more, though the "
                                  "kept texts have only 11 distinct words, fewer than the 200 "
                                  "requested",
        "min_piece_count": 10, "words_counted": 11, "words_at_min_piece_count": 7,
        "words_used": 11, "words_outside_alphabet": 0, "words_learned_from": 11,
        "rarest_word_count": 2, "characters_seen": 16, "max_unique_chars": 65, "alphabet": 16,
        "search_lower": 10, "search_upper": 50, "search_steps": [[10, 44]],
        "final_threshold": 10, "words_at_final_threshold": 7, "learned": 44}
    # 5 reserved + 16 characters + 16 "##" characters + the 7 words seen >= 10 times.
    assert len(vocab) == 44 and vocab[21:28] == ["the", "red", "bus", "car", "buses", "cars", "blue"]
    # Lowering the count is what gives more: at 1, every word is a piece.
    lowered, vocab = _learn(tmp_path, RARER, 200, 1)
    assert (lowered["achieved"], lowered["limited_by"], lowered["final_threshold"]) == (48, "corpus", 1)
    assert {"reds", "lemon", "pear", "arrow"} <= set(vocab)
    assert lowered["limited_by_explanation"] == (
        "even at piece count 1 every word and word piece of the 11 distinct words learned from "
        "fits in 48 entries: the kept texts have too few distinct words for 200")


def test_vocab_meets_the_requested_size(tmp_path):
    summary, vocab = _learn(tmp_path, SYLLABLES, 40, 2)
    assert summary == {
        "requested": 40, "achieved": 40, "limited_by": "requested",
        "limited_by_explanation": "every word piece seen at least 47 times fits in 40 entries, "
                                  "within 5% of the 40 requested",
        "min_piece_count": 2, "words_counted": 25, "words_at_min_piece_count": 25,
        "words_used": 25, "words_outside_alphabet": 0, "words_learned_from": 25,
        "rarest_word_count": 2, "characters_seen": 10, "max_unique_chars": 11, "alphabet": 10,
        "search_lower": 2, "search_upper": 74, "search_steps": [[2, 50], [38, 41], [56, 37], [47, 40]],
        "final_threshold": 47, "words_at_final_threshold": 10, "learned": 40}
    assert len(vocab) == 40


def test_vocab_limited_by_the_alphabet_bound(tmp_path):
    # vocab_size 12: (12 - 5) // 3 = 2 characters allowed, no word has only those two.
    summary, vocab = _learn(tmp_path, WORD_COUNTS, 12, 10)
    assert vocab == RESERVED
    assert (summary["limited_by"], summary["words_outside_alphabet"], summary["words_learned_from"],
            summary["max_unique_chars"], summary["characters_seen"]) == ("alphabet", 7, 0, 2, 11)
    assert summary["limited_by_explanation"] == (
        "only the 2 most frequent of the 11 characters fit in a vocabulary of 12 (a third of it "
        "at most), so 7 of the 7 distinct words were left out of the learning: none remained, "
        "only the reserved entries")


def test_vocab_words_counted_include_words_left_out_before_learning(tmp_path):
    # The Beam side hands the learner the most frequent words only (MAX_INPUT_WORDS); the
    # count-of-counts still covers every word counted.
    summary, _ = _learn(tmp_path, RARER, 200, 10, count_of_counts={1: 500, 2: 1, 3: 1, 4: 1, 6: 1,
                                                                   10: 1, 11: 1, 12: 1, 15: 1,
                                                                   20: 1, 30: 1, 50: 1})
    assert (summary["words_counted"], summary["words_at_min_piece_count"],
            summary["words_used"]) == (511, 7, 11)
    assert summary["limited_by"] == "min_piece_count"
    assert "(7 of the 511 distinct words are seen that often)" in summary["limited_by_explanation"]


def test_vocab_summary_cut_and_threshold_step():
    trace = {"final_threshold": 20, "steps": [[2, 299], [34, 155], [17, 197], [20, 197]],
             "learned": 197, "words_learned_from": 300, "rarest_word_count": 1}
    cut = vocab_summary(170, ["x"] * 170, trace, 2, {"a": 1})
    assert cut["limited_by"] == "requested" and cut["learned"] == 197 and cut["achieved"] == 170
    assert cut["limited_by_explanation"] == (
        "the threshold search found no piece count giving between 162 and 170 entries (it ended "
        "at 20, with 197), so the vocabulary was cut to the 170 requested, its rarest pieces "
        "left out")
    trace = {"final_threshold": 4001, "steps": [[2, 299], [2152, 112], [4000, 112], [4001, 64]],
             "learned": 64, "words_learned_from": 300, "rarest_word_count": 1}
    step = vocab_summary(100, ["x"] * 64, trace, 2, {"a": 1})
    assert step["limited_by"] == "threshold_step"
    assert step["limited_by_explanation"] == (
        "the threshold search ended at piece count 4001 with 64 entries, while the next lower "
        "count tried, 4000, gives 112, more than the 100 requested: no count tried lands within "
        "5% below it")


def test_vocab_of_no_words():
    vocab, trace = learn_wordpiece_traced({}, 50)
    summary = vocab_summary(50, vocab, trace, 10, {})
    assert vocab == RESERVED and summary["achieved"] == 5 and summary["limited_by"] == "corpus"
    assert summary["words_counted"] == 0 and summary["final_threshold"] is None


def test_summary_line_says_why_the_vocab_is_smaller(tmp_path):
    from pipeline.curate import vocab_shortfall

    summary, _ = _learn(tmp_path, RARER, 200, 10)
    assert vocab_shortfall(summary) == (
        " (of 200 requested; limited by min_piece_count: " + summary["limited_by_explanation"] + ")")
    assert vocab_shortfall(_learn(tmp_path, SYLLABLES, 40, 2)[0]) == ""
    assert vocab_shortfall({"requested": 100, "achieved": 42}) == ""  # older stats.json
