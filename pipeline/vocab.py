"""WordPiece vocabulary learned from the kept alt-texts (paper section 5: 100k wordpieces).

Structured like tensorflow/transform's vocabulary analyzer: accumulate word counts
(CombinePerKey, hot-key fan-out), merge, prune to a bounded number of words (frequency cut-off
read from a count-of-counts histogram, as in token_counts.py: no Top.Of), then one worker learns
the pieces with tensorflow_text's WordPiece learner (`wordpiece_tokenizer_learner_lib.learn`,
the library behind `bert_vocab_from_dataset`) and writes vocab.txt. Words are split exactly as
`tensorflow_text.BertTokenizer(vocab, lower_case=True)` will split them in the trainer: its
BasicTokenizer (lower-case, accents stripped, punctuation and CJK characters split off).
"""
import collections
import importlib.util
import os
import sys
from typing import Dict, Iterable, List, Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from pipeline import wordpiece_learner
from pipeline.basic_words import basic_words
from pipeline.token_counts import CountOfCountsFn, frequency_cutoff

BERT_RESERVED_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
VOCAB_SIZE = 100_000  # paper 5: a 100k wordpiece vocabulary generated from the training data
# The learner's lowest frequency threshold for a word piece (tensorflow_text's default, 10). On
# web-scale data the 100k-entry vocabulary is reached far above it; on a small corpus it is what
# caps the vocabulary (the achieved size is reported), so small runs may lower it.
MIN_PIECE_COUNT = 10

# Words handed to the single-process learner (the most frequent ones, cut-off from count-of-counts).
# tensorflow_text's own default is 5M, but its learner is pure Python and its time grows faster
# than linearly with this number (bench/vocab_learner.py, docs/BENCHMARKS.md); 1M words is
# far more than a 100k-piece vocabulary needs, the rarer words being split into pieces anyway.
MAX_INPUT_WORDS = 1_000_000
MAX_UNIQUE_CHARS = 1000  # tensorflow_text's default alphabet bound
HOT_KEY_FANOUT = 16


class BasicTokenizeFn(beam.DoFn):
    """Batch of texts -> (word, count in the batch), words as tensorflow_text's BERT BasicTokenizer
    splits them. Latin-only texts (and General Punctuation) are split in Python
    (pipeline/basic_words.py, same words); the TensorFlow tokenizer is built, once per worker, only
    when a batch has another text (saves the ~5 CPU-s TF import)."""

    def __init__(self, lower_case: bool = True):
        self._lower_case = lower_case
        self._tokenizer = None

    def _real_tokenizer(self):
        if self._tokenizer is None:
            from tensorflow_text.python.ops import bert_tokenizer  # heavy import, only if needed

            self._tokenizer = bert_tokenizer.BasicTokenizer(lower_case=self._lower_case)
        return self._tokenizer

    def process(self, texts: List[str]):
        """Yields (word, occurrences in the batch): the count is pre-combined per batch."""
        if not self._lower_case:  # the fast path is for lower_case=True only
            words = basic_tokenize(texts, self._real_tokenizer(), fast_path=False)
        else:
            words = basic_tokenize(texts, make_tokenizer=self._real_tokenizer)
        yield from collections.Counter(words).items()


def basic_tokenize(texts: Sequence[str], tokenizer=None, make_tokenizer=None,
                   fast_path: bool = True) -> List[str]:
    """Words of `texts` as BertTokenizer's basic tokenization (lower_case=True) splits them (str),
    in text order. Texts outside basic_words' Latin fast path go to `tokenizer` (or
    `make_tokenizer()`); with fast_path=False every text does."""
    fast = [basic_words(text) if fast_path else None for text in texts]
    slow = [text for text, words in zip(texts, fast) if words is None]
    if slow:
        tokenizer = tokenizer or make_tokenizer()
        split = iter([[w.decode("utf-8") for w in words]
                      for words in tokenizer.tokenize(slow).to_list()])
        fast = [next(split) if words is None else words for words in fast]
    return [word for words in fast for word in words]


def alphabet_bound(vocab_size: int, reserved_tokens: Sequence[str]) -> int:
    """Characters allowed in the learner: each costs 2 entries (`c`, `##c`); at most a third of
    the vocabulary goes to them, so that the size cap leaves room for real wordpieces. Words with
    other characters are left out of the learning (BertTokenizer maps them to [UNK])."""
    return max(1, min(MAX_UNIQUE_CHARS, (vocab_size - len(reserved_tokens)) // 3))


def _wordpiece_learner_lib():
    """tensorflow_text's WordPiece learner module. It is pure Python (collections, numpy), but
    importing it through its package runs tensorflow_text/__init__, which imports TensorFlow
    (~5 CPU-s per worker); so the module file is loaded on its own, from the installed package."""
    for name in ("tensorflow_text.tools.wordpiece_vocab.wordpiece_tokenizer_learner_lib",
                 "_align_wordpiece_learner_lib"):
        if name in sys.modules:
            return sys.modules[name]
    package = importlib.util.find_spec("tensorflow_text")  # locates, does not execute
    path = os.path.join(os.path.dirname(package.origin), "tools", "wordpiece_vocab",
                        "wordpiece_tokenizer_learner_lib.py")
    spec = importlib.util.spec_from_file_location("_align_wordpiece_learner_lib", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[spec.name] = module
    return module


def learn_wordpiece(word_counts: Dict[str, int], vocab_size: int,
                    reserved_tokens: Sequence[str] = BERT_RESERVED_TOKENS, **learn_kwargs) -> List[str]:
    """WordPiece vocabulary (reserved tokens first) of at most `vocab_size` entries.

    tensorflow_text's learner aims at [vocab_size * 0.95, vocab_size] but can return more when
    the counts leave no threshold in that range; the list is then cut at `vocab_size` (its order is
    reserved, single characters, then pieces by decreasing count, so the rarest pieces go).

    Its binary search over piece-count thresholds runs one full learning step per threshold
    (~10-20 of them). When even the lowest threshold allowed (`lower_thresh`, a piece must be seen
    that often) gives at most `vocab_size` entries, no threshold can do better, so that one step is
    the answer: a corpus too small to fill the vocabulary (the demo, tests, samples) learns in one
    step. Otherwise the learner's own search runs, with its threshold-independent first counting
    pass done once (pipeline/wordpiece_learner.py: the library's result, 1.1-1.2x faster at
    20k-40k words, docs/BENCHMARKS.md).
    """
    learner = _wordpiece_learner_lib()
    if vocab_size < len(reserved_tokens):
        raise ValueError(f"vocab_size {vocab_size} < {len(reserved_tokens)} reserved tokens")
    counts = sorted(word_counts.items())  # deterministic input order
    if not counts:
        return list(reserved_tokens)
    learn_kwargs.setdefault("max_unique_chars", alphabet_bound(vocab_size, reserved_tokens))
    learn_kwargs.setdefault("lower_thresh", MIN_PIECE_COUNT)
    vocab = wordpiece_learner.learn(learner, counts, vocab_size, reserved_tokens,
                                    try_lower_thresh_first=True, **learn_kwargs)
    return vocab[:vocab_size]


def prune_word_counts(word_counts: Iterable, cutoff: dict) -> Dict[str, int]:
    return {word: count for word, count in word_counts if count >= cutoff["min_count_kept"]}


def write_vocab(vocab: Sequence[str], output_path: str) -> None:
    with FileSystems.create(output_path) as f:
        f.write("".join(token + "\n" for token in vocab).encode("utf-8"))


def learn_and_write(word_counts: Dict[str, int], vocab_size: int, reserved_tokens, output_path: str,
                    min_piece_count: int = MIN_PIECE_COUNT) -> dict:
    vocab = learn_wordpiece(word_counts, vocab_size, reserved_tokens, lower_thresh=min_piece_count)
    write_vocab(vocab, output_path)
    return {"requested": vocab_size, "achieved": len(vocab), "words_used": len(word_counts),
            "min_piece_count": min_piece_count}


class BuildVocab(beam.PTransform):
    """PCollection[str] of kept normalized texts -> writes `output_path` (one token per line,
    reserved tokens first, single writer) -> PCollection[one {"requested", "achieved", ...}]."""

    def __init__(self, vocab_size=VOCAB_SIZE, output_path="vocab.txt", reserved_tokens=BERT_RESERVED_TOKENS,
                 lower_case=True, max_input_words=MAX_INPUT_WORDS, hot_key_fanout=HOT_KEY_FANOUT,
                 min_piece_count=MIN_PIECE_COUNT):
        super().__init__()
        self._min_piece_count = min_piece_count
        self._vocab_size = vocab_size
        self._output_path = output_path
        self._reserved = tuple(reserved_tokens)
        self._lower_case = lower_case
        self._max_words = max_input_words
        self._fanout = hot_key_fanout

    def expand(self, texts):
        counts = (texts
                  | "Batch" >> beam.BatchElements(min_batch_size=64, max_batch_size=1024)
                  | "BasicTokenize" >> beam.ParDo(BasicTokenizeFn(self._lower_case))
                  | "CountWords" >> beam.CombinePerKey(sum).with_hot_key_fanout(self._fanout))
        cutoff = (counts
                  | "WordCount" >> beam.Values()
                  | "CountOfCounts" >> beam.CombineGlobally(CountOfCountsFn())
                  | "CutOff" >> beam.Map(frequency_cutoff, self._max_words))
        pruned = (counts
                  | "Prune" >> beam.Filter(lambda wc, c: wc[1] >= c["min_count_kept"],
                                           beam.pvalue.AsSingleton(cutoff))
                  | "ToDict" >> beam.combiners.ToDict())
        return pruned | "LearnAndWrite" >> beam.Map(
            learn_and_write, self._vocab_size, self._reserved, self._output_path,
            self._min_piece_count)
