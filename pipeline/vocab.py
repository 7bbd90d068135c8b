"""WordPiece vocabulary learned from the kept alt-texts (paper section 5: 100k wordpieces).

Structured like tensorflow/transform's vocabulary analyzer: accumulate word counts
(CombinePerKey, hot-key fan-out), merge, prune to a bounded number of words (frequency cut-off
read from a count-of-counts histogram, as in token_counts.py: no Top.Of), then one worker learns
the pieces with tensorflow_text's WordPiece learner algorithm (`wordpiece_tokenizer_learner_lib.
learn`, the library behind `bert_vocab_from_dataset`), ported to pipeline/wordpiece_learner.py:
the same vocabulary, its counting passes in numpy, no TensorFlow needed (~1 min of CPU instead
of hours at 1M words, docs/BENCHMARKS.md), and writes vocab.txt. Words are split exactly as
`tensorflow_text.BertTokenizer(vocab, lower_case=True)` will split them in the trainer: its
BasicTokenizer (lower-case, accents stripped, punctuation and CJK characters split off); without
tensorflow_text installed, texts outside pipeline/basic_words.py's exact Latin path are split by
pipeline/wordpiece_basic_words.py (pure Python, the same steps with `unicodedata`).
The step returns stats.json's `vocab` section: the sizes and why the achieved one is what it is
(`vocab_summary`: `limited_by`, docs/PIPELINE.md).
"""
import collections
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from pipeline import wordpiece_learner
from pipeline.basic_words import basic_words
from pipeline.token_counts import CountOfCountsFn, frequency_cutoff
from pipeline.wordpiece_basic_words import basic_words_any

BERT_RESERVED_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
VOCAB_SIZE = 100_000  # paper 5: a 100k wordpiece vocabulary generated from the training data
# The learner's lowest frequency threshold for a word piece (tensorflow_text's default, 10). On
# web-scale data the 100k-entry vocabulary is reached far above it; on a small corpus it is what
# caps the vocabulary (stats.json's vocab.limited_by says so, vocab_summary), so small runs may
# lower it.
MIN_PIECE_COUNT = 10

# Words handed to the single-process learner (the most frequent ones, cut-off from count-of-counts).
# tensorflow_text's own default is 5M; 1M words is far more than a 100k-piece vocabulary needs,
# the rarer words being split into pieces anyway, and keeps the learner's memory (~1-2 GB at 1M
# words, its suffix graph) and time (~1 CPU-min, bench/vocab_learner.py) small on one worker.
MAX_INPUT_WORDS = 1_000_000
MAX_UNIQUE_CHARS = 1000  # tensorflow_text's default alphabet bound
HOT_KEY_FANOUT = 16


class BasicTokenizeFn(beam.DoFn):
    """Batch of texts -> (word, count in the batch), words as tensorflow_text's BERT BasicTokenizer
    splits them. Latin-only texts (and General Punctuation) are split in Python
    (pipeline/basic_words.py, same words); the TensorFlow tokenizer is built, once per worker, only
    when a batch has another text (saves the ~5 CPU-s TF import). Without tensorflow_text (the
    `[curate]` install) those texts are split by pipeline/wordpiece_basic_words.py instead."""

    def __init__(self, lower_case: bool = True):
        self._lower_case = lower_case
        self._tokenizer = None

    def _real_tokenizer(self):
        if self._tokenizer is None:
            try:
                from tensorflow_text.python.ops import bert_tokenizer  # heavy import, if needed
            except ImportError:
                if not self._lower_case:
                    raise
                self._tokenizer = _PythonBasicTokenizer()
            else:
                self._tokenizer = bert_tokenizer.BasicTokenizer(lower_case=self._lower_case)
        return self._tokenizer

    def process(self, texts: List[str]):
        """Yields (word, occurrences in the batch): the count is pre-combined per batch."""
        if not self._lower_case:  # the fast path is for lower_case=True only
            words = basic_tokenize(texts, self._real_tokenizer(), fast_path=False)
        else:
            words = basic_tokenize(texts, make_tokenizer=self._real_tokenizer)
        yield from collections.Counter(words).items()


class _PythonBasicTokenizer:
    """Marks basic_tokenize's pure-Python path (tensorflow_text not installed)."""


def basic_tokenize(texts: Sequence[str], tokenizer=None, make_tokenizer=None,
                   fast_path: bool = True) -> List[str]:
    """Words of `texts` as BertTokenizer's basic tokenization (lower_case=True) splits them (str),
    in text order. Texts outside basic_words' Latin fast path go to `tokenizer` (or
    `make_tokenizer()`); with fast_path=False every text does."""
    fast = [basic_words(text) if fast_path else None for text in texts]
    slow = [text for text, words in zip(texts, fast) if words is None]
    if slow:
        tokenizer = tokenizer or make_tokenizer()
        if isinstance(tokenizer, _PythonBasicTokenizer):
            split = iter([basic_words_any(text) for text in slow])
        else:
            split = iter([[w.decode("utf-8") for w in words]
                          for words in tokenizer.tokenize(slow).to_list()])
        fast = [next(split) if words is None else words for words in fast]
    return [word for words in fast for word in words]


def alphabet_bound(vocab_size: int, reserved_tokens: Sequence[str]) -> int:
    """Characters allowed in the learner: each costs 2 entries (`c`, `##c`); at most a third of
    the vocabulary goes to them, so that the size cap leaves room for real wordpieces. Words with
    other characters are left out of the learning (BertTokenizer maps them to [UNK])."""
    return max(1, min(MAX_UNIQUE_CHARS, (vocab_size - len(reserved_tokens)) // 3))


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
    return learn_wordpiece_traced(word_counts, vocab_size, reserved_tokens, **learn_kwargs)[0]


def learn_wordpiece_traced(word_counts: Dict[str, int], vocab_size: int,
                           reserved_tokens: Sequence[str] = BERT_RESERVED_TOKENS,
                           **learn_kwargs) -> Tuple[List[str], dict]:
    """`learn_wordpiece`'s vocabulary and the learner's trace (pipeline/wordpiece_learner.learn:
    search bounds, [threshold, size] per step, final threshold, words learned from, alphabet),
    plus `learned`: the size before the cut at `vocab_size`."""
    if vocab_size < len(reserved_tokens):
        raise ValueError(f"vocab_size {vocab_size} < {len(reserved_tokens)} reserved tokens")
    counts = sorted(word_counts.items())  # deterministic input order
    if not counts:
        return list(reserved_tokens), {"learned": len(reserved_tokens), "steps": [],
                                       "final_threshold": None}
    learn_kwargs.setdefault("max_unique_chars", alphabet_bound(vocab_size, reserved_tokens))
    learn_kwargs.setdefault("lower_thresh", MIN_PIECE_COUNT)
    trace: dict = {}
    vocab = wordpiece_learner.learn(counts, vocab_size, reserved_tokens,
                                    try_lower_thresh_first=True, trace=trace, **learn_kwargs)
    trace["learned"] = len(vocab)
    return vocab[:vocab_size], trace


def _words_at_least(count_of_counts: Dict[int, int], minimum: Optional[int]) -> int:
    if minimum is None:
        return 0
    return sum(n for count, n in count_of_counts.items() if count >= minimum)


def _times(n) -> str:
    return "once" if n == 1 else f"{n} times"


def vocab_summary(requested: int, vocab: Sequence[str], trace: dict, min_piece_count: int,
                  word_counts: Dict[str, int], count_of_counts: Optional[Dict[int, int]] = None,
                  slack_ratio: float = 0.05) -> dict:
    """stats.json's `vocab` section (fields: docs/PIPELINE.md): sizes, the words and piece-count
    thresholds behind them, and `limited_by` + `limited_by_explanation` (one sentence): why the
    size is what it is. `limited_by` is one of

      requested        the size is within the learner's slack (5%) below `requested`, or the
                       vocabulary was cut to `requested`
      min_piece_count  the search stopped at its lowest piece count (--vocab_min_piece_count)
                       and some words are rarer than that: a lower --vocab_min_piece_count gives
                       more entries
      corpus           no threshold can add words: the search stopped at piece count 1, or at a
                       count every word learned from reaches (each is a whole piece already), or
                       there are no words
      alphabet         as for corpus, but words were left out of the learning because they have
                       a character outside the `max_unique_chars` most frequent (alphabet_bound:
                       a third of the vocabulary); a larger --vocab_size allows more characters
      threshold_step   the search ended above its lowest piece count without landing within the
                       slack (the counts jump past the target from one threshold to the next)

    `count_of_counts` ({word count: distinct words}) covers every word counted in the kept texts,
    also those left out before learning (MAX_INPUT_WORDS); without it, `word_counts` is used.
    """
    if count_of_counts is None:
        count_of_counts = dict(collections.Counter(word_counts.values()))
    count_of_counts = {int(k): int(v) for k, v in count_of_counts.items()}
    final = trace.get("final_threshold")
    summary = {
        "requested": requested,
        "achieved": len(vocab),
        "limited_by": None,
        "limited_by_explanation": None,
        "min_piece_count": min_piece_count,
        "words_counted": sum(count_of_counts.values()),
        "words_at_min_piece_count": _words_at_least(count_of_counts, min_piece_count),
        "words_used": len(word_counts),
        "words_outside_alphabet": int(trace.get("words_outside_alphabet", 0)),
        "words_learned_from": int(trace.get("words_learned_from", 0)),
        "rarest_word_count": trace.get("rarest_word_count"),
        "characters_seen": int(trace.get("characters_seen", 0)),
        "max_unique_chars": trace.get("max_unique_chars"),
        "alphabet": int(trace.get("alphabet", 0)),
        "search_lower": trace.get("search_lower"),
        "search_upper": trace.get("search_upper"),
        "search_steps": [list(step) for step in trace.get("steps", [])],
        "final_threshold": final,
        "words_at_final_threshold": _words_at_least(count_of_counts, final),
        "learned": int(trace.get("learned", len(vocab))),
    }
    summary["limited_by"], summary["limited_by_explanation"] = _limiting_factor(
        summary, float(trace.get("slack_ratio", slack_ratio)))
    return summary


def _limiting_factor(s: dict, slack_ratio: float) -> Tuple[str, str]:
    """(limited_by, explanation) for vocab_summary's fields `s` (see its docstring)."""
    requested, achieved, final = s["requested"], s["achieved"], s["final_threshold"]
    if achieved <= requested and requested - achieved <= slack_ratio * requested:
        if s["learned"] > requested:
            return "requested", (
                f"the threshold search found no piece count giving between "
                f"{requested - int(slack_ratio * requested):,} and {requested:,} entries (it ended "
                f"at {final}, with {s['learned']:,}), so the vocabulary was cut to the "
                f"{requested:,} requested, its rarest pieces left out")
        return "requested", (f"every word piece seen at least {_times(final)} fits in "
                             f"{achieved:,} entries, within {slack_ratio:.0%} of the "
                             f"{requested:,} requested")
    outside = s["words_outside_alphabet"]

    def alphabet() -> str:
        return (f"only the {s['max_unique_chars']:,} most frequent of the "
                f"{s['characters_seen']:,} characters fit in a vocabulary of {requested:,} (a "
                f"third of it at most), so {outside:,} of the {s['words_used']:,} distinct words "
                f"were left out of the learning")

    if not s["words_learned_from"]:
        if outside:
            return "alphabet", f"{alphabet()}: none remained, only the reserved entries"
        return "corpus", (f"no word of the kept texts could be learned from "
                          f"({s['words_counted']:,} counted), only the reserved entries remain")
    if final is not None and final <= 1:
        return "corpus", (f"even at piece count 1 every word and word piece of the "
                          f"{s['words_learned_from']:,} distinct words learned from fits in "
                          f"{achieved:,} entries: the kept texts have too few distinct words for "
                          f"{requested:,}")
    stopped_lowest = len(s["search_steps"]) == 1  # the first try, at the lowest count, fitted
    if stopped_lowest and (s["rarest_word_count"] or 0) >= final:
        n = s["words_learned_from"]
        words = "the one word learned from is" if n == 1 else \
            f"all {n:,} distinct words learned from are"
        whole = (f"{words} seen at least {_times(final)}, the lowest piece count tried, "
                 f"so each is a whole piece of the {achieved:,} entries")
        if outside:
            return "alphabet", (f"{alphabet()}, and {whole}; a larger --vocab_size allows "
                                f"more characters")
        return "corpus", (f"{whole}: the kept texts have too few distinct words for "
                          f"{requested:,}")
    if stopped_lowest:
        m = s["min_piece_count"]
        lowest = ("" if final == m else
                  f", the lowest count the search allows with --vocab_min_piece_count {m}")
        hint = ""
        if s["words_counted"] < requested:
            hint = (f", though the kept texts have only {s['words_counted']:,} distinct words, "
                    f"fewer than the {requested:,} requested")
        return "min_piece_count", (
            f"every word piece seen at least {_times(final)}{lowest} fits in {achieved:,} "
            f"entries ({s['words_at_final_threshold']:,} of the {s['words_counted']:,} distinct "
            f"words are seen that often); lower --vocab_min_piece_count (e.g. {2 if m > 2 else 1})"
            f" to allow more{hint}")
    over = [(t, n) for t, n in s["search_steps"] if t < final and n > requested]
    if over:
        lower_t, lower_n = max(over)
        return "threshold_step", (
            f"the threshold search ended at piece count {final} with {achieved:,} entries, while "
            f"the next lower count tried, {lower_t}, gives {lower_n:,}, more than the "
            f"{requested:,} requested: no count tried lands within {slack_ratio:.0%} below it")
    return "threshold_step", (
        f"the threshold search ended at piece count {final} with {achieved:,} entries, not "
        f"within {slack_ratio:.0%} below the {requested:,} requested (steps: "
        f"{s['search_steps']})")


def prune_word_counts(word_counts: Iterable, cutoff: dict) -> Dict[str, int]:
    return {word: count for word, count in word_counts if count >= cutoff["min_count_kept"]}


def write_vocab(vocab: Sequence[str], output_path: str) -> None:
    with FileSystems.create(output_path) as f:
        f.write("".join(token + "\n" for token in vocab).encode("utf-8"))


def learn_and_write(word_counts: Dict[str, int], vocab_size: int, reserved_tokens, output_path: str,
                    min_piece_count: int = MIN_PIECE_COUNT,
                    count_of_counts: Optional[Dict[int, int]] = None) -> dict:
    """Learns, writes vocab.txt, returns stats.json's `vocab` section (`vocab_summary`)."""
    vocab, trace = learn_wordpiece_traced(word_counts, vocab_size, reserved_tokens,
                                          lower_thresh=min_piece_count)
    write_vocab(vocab, output_path)
    return vocab_summary(vocab_size, vocab, trace, min_piece_count, word_counts, count_of_counts)


class BuildVocab(beam.PTransform):
    """PCollection[str] of kept normalized texts -> writes `output_path` (one token per line,
    reserved tokens first, single writer) -> PCollection[one stats.json `vocab` section:
    {"requested", "achieved", "limited_by", ...}, see vocab_summary]."""

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
        count_of_counts = (counts
                           | "WordCount" >> beam.Values()
                           | "CountOfCounts" >> beam.CombineGlobally(CountOfCountsFn()))
        cutoff = count_of_counts | "CutOff" >> beam.Map(frequency_cutoff, self._max_words)
        pruned = (counts
                  | "Prune" >> beam.Filter(lambda wc, c: wc[1] >= c["min_count_kept"],
                                           beam.pvalue.AsSingleton(cutoff))
                  | "ToDict" >> beam.combiners.ToDict())
        return pruned | "LearnAndWrite" >> beam.Map(
            learn_and_write, self._vocab_size, self._reserved, self._output_path,
            self._min_piece_count, beam.pvalue.AsSingleton(count_of_counts))
