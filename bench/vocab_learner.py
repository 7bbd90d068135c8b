"""Benchmark: the single-worker WordPiece learning step of BuildVocab, and the alternatives.

pipeline/vocab.py hands at most `max_input_words` (word, count) pairs to the learner (tensorflow_
text's algorithm, ported to pipeline/wordpiece_learner.py with numpy counting passes). This
measures, on synthetic Zipf-like word counts (random letter strings, count ~ 1e6 / rank), in one
run on the same counts:

- the port (`pipeline.vocab.learn_wordpiece`, as the pipeline calls it): wall and CPU seconds;
- `--compare_library`: tensorflow_text's own `learn()` (pure Python; only up to
  `--library_max_words`, it takes hours at 1M words): time, same vocabulary (exact), ratio;
- `--compare_hf`: Hugging Face `tokenizers`' (Rust) WordPieceTrainer (BPE merges, then `##`
  pieces), given the same counts (each word repeated count times) and the port's achieved size
  as its vocab_size: time, ratio, Jaccard of the two vocabulary sets, share of the port's
  vocabulary found in HF's, characters of the alphabet missing as `c` or `##c`;
- `--held_out N`: tokenization of N held-out word occurrences (a second draw of the same
  generator) by `tensorflow_text.BertTokenizer(vocab, lower_case=True)` (the trainer's tokenizer)
  with each vocabulary: mean pieces per word, [UNK] rate;
- `--captions PATH`: the same on real captions (a tab-separated file, caption first, e.g.
  /work/corpus/captions.tsv): words of a random 80% learned, the other 20% tokenized.

Ratios are within one run (same counts, same machine load); timings on a shared machine are noisy.

Usage:
  nice .venv/bin/python bench/vocab_learner.py --words 100000 1000000 --vocab_size 100000 \\
      --compare_hf --held_out 200000
  nice .venv/bin/python bench/vocab_learner.py --words 20000 --vocab_size 8000 --compare_library
  nice .venv/bin/python bench/vocab_learner.py --words --captions /work/corpus/captions.tsv \\
      --compare_hf --caption_vocab_size 4000 --lower_thresh 2
"""
import argparse
import os
import random
import tempfile
import time
from typing import Dict, List

from pipeline import wordpiece_learner
from pipeline.vocab import BERT_RESERVED_TOKENS, alphabet_bound, basic_tokenize, \
    learn_wordpiece

LETTERS = "etaoinshrdlcumwfgypbvkjxqz"
WEIGHTS = [12, 9, 8, 7, 7, 6, 6, 6, 6, 4, 4, 3, 3, 2, 2, 2, 2, 2, 2, 1.5, 1, 0.8, 0.2, 0.2, 0.1, 0.1]


def zipf_word_counts(n_words: int, seed: int = 0) -> dict:
    rng = random.Random(seed)
    counts = {}
    while len(counts) < n_words:
        word = "".join(rng.choices(LETTERS, WEIGHTS, k=rng.randint(2, 10)))
        counts.setdefault(word, int(1e6 / (len(counts) + 1)) + 1)
    return counts


def held_out_words(n_words: int, n_occurrences: int, seed: int = 1) -> List[str]:
    """`n_occurrences` words drawn by count from a second draw of the generator (other seed: its
    frequent words are mostly unseen letter strings, as rare real words are)."""
    counts = zipf_word_counts(n_words, seed)
    rng = random.Random(seed)
    return rng.choices(list(counts), weights=list(counts.values()), k=n_occurrences)


def timed(fn, *args, **kwargs):
    start, start_cpu = time.perf_counter(), time.process_time()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start, time.process_time() - start_cpu


def learn_hf(counts: Dict[str, int], vocab_size: int, max_unique_chars: int,
             min_frequency: int) -> List[str]:
    """HF tokenizers' WordPieceTrainer on the word counts, vocabulary in id order."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency,
        special_tokens=list(BERT_RESERVED_TOKENS), limit_alphabet=max_unique_chars,
        continuing_subword_prefix="##", show_progress=False)
    texts = (" ".join([word] * count) for word, count in counts.items())
    tokenizer.train_from_iterator(texts, trainer, length=len(counts))
    vocab = tokenizer.get_vocab()
    return sorted(vocab, key=vocab.get)


def tokenization(vocab: List[str], words: List[str]) -> dict:
    """Mean pieces per word and [UNK] rate of `words` under tensorflow_text.BertTokenizer."""
    import tensorflow as tf
    import tensorflow_text as tf_text

    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
        f.write("".join(token + "\n" for token in vocab))
    try:
        tokenizer = tf_text.BertTokenizer(f.name, lower_case=True, token_out_type=tf.string)
        pieces = tokenizer.tokenize(tf.constant(words)).merge_dims(-3, -2)
        lengths = pieces.row_lengths().numpy()
        unknown = tf.reduce_sum(tf.cast(tf.equal(pieces.flat_values, b"[UNK]"), tf.int64)).numpy()
    finally:
        os.unlink(f.name)
    return {"pieces_per_word": float(lengths.mean()), "unk_rate": float(unknown) / len(words)}


def library_vocab(counts: Dict[str, int], vocab_size: int, lower_thresh: int,
                  max_chars: int) -> List[str]:
    """What learn_wordpiece returned when it called tensorflow_text's learn(): the vocabulary at
    the lowest piece count when it fits, else the library's search; cut at vocab_size."""
    lib = wordpiece_learner.tensorflow_text_learner()
    args = (sorted(counts.items()), vocab_size, list(BERT_RESERVED_TOKENS))
    vocab = lib.learn(*args, lower_thresh=lower_thresh, upper_thresh=lower_thresh,
                      max_unique_chars=max_chars)
    if len(vocab) > vocab_size:
        vocab = lib.learn(*args, lower_thresh=lower_thresh, max_unique_chars=max_chars)
    return vocab[:vocab_size]


def compare_sets(ours: List[str], theirs: List[str], alphabet) -> dict:
    a, b = set(ours), set(theirs)
    missing = [c for c in alphabet if c not in b] + ["##" + c for c in alphabet
                                                        if "##" + c not in b]
    return {"jaccard": len(a & b) / len(a | b), "share_of_ours": len(a & b) / len(a),
            "chars_missing": len(missing), "missing": missing}


def report(name: str, counts: Dict[str, int], vocab_size: int, lower_thresh: int, args,
           held_out: List[str]) -> None:
    max_chars = alphabet_bound(vocab_size, BERT_RESERVED_TOKENS)
    print(f"== {name}: {len(counts):,} distinct words, {sum(counts.values()):,} occurrences, "
          f"vocab_size {vocab_size:,}, lowest piece count {lower_thresh}", flush=True)
    ours, seconds, cpu = timed(learn_wordpiece, counts, vocab_size, lower_thresh=lower_thresh)
    print(f"  port (pipeline/wordpiece_learner.py): {len(ours):,} entries in {seconds:.1f} s, "
          f"{cpu:.1f} CPU-s", flush=True)
    vocabs = {"port": ours}
    if args.compare_library and len(counts) <= args.library_max_words:
        reference, lib_seconds, lib_cpu = timed(library_vocab, counts, vocab_size, lower_thresh,
                                                max_chars)
        print(f"  tensorflow_text learn(): {lib_seconds:.1f} s, {lib_cpu:.1f} CPU-s; same "
              f"vocabulary: {reference == ours}; library / port = {lib_cpu / cpu:.1f} (CPU), "
              f"{lib_seconds / seconds:.1f} (wall)", flush=True)
    if args.compare_hf:
        # At the port's achieved size, so that both vocabularies have as many entries.
        hf, hf_seconds, hf_cpu = timed(learn_hf, counts, len(ours), max_chars, lower_thresh)
        alphabet = sorted(wordpiece_learner.get_allowed_chars(list(counts.items()), max_chars))
        sets = compare_sets(ours, hf, alphabet)
        print(f"  HF tokenizers WordPieceTrainer: {len(hf):,} entries in {hf_seconds:.1f} s, "
              f"{hf_cpu:.1f} CPU-s (all its threads); HF / port = {hf_cpu / cpu:.2f} (CPU), "
              f"{hf_seconds / seconds:.2f} (wall); Jaccard {sets['jaccard']:.3f}, "
              f"{sets['share_of_ours']:.1%} of the port's entries in HF's, "
              f"{sets['chars_missing']} of the alphabet's c / ##c missing from HF's "
              f"{' '.join(sets['missing'][:30])}", flush=True)
        vocabs["hf"] = hf
    if held_out:
        for label, vocab in vocabs.items():
            t = tokenization(vocab, held_out)
            print(f"  held-out {len(held_out):,} words, BertTokenizer with the {label} vocabulary:"
                  f" {t['pieces_per_word']:.3f} pieces/word, [UNK] {t['unk_rate']:.3%}",
                  flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--words", type=int, nargs="*", default=[20000])
    ap.add_argument("--vocab_size", type=int, default=8000)
    ap.add_argument("--lower_thresh", type=int, default=10, help="lowest piece count")
    ap.add_argument("--compare_library", action="store_true")
    ap.add_argument("--library_max_words", type=int, default=100_000)
    ap.add_argument("--compare_hf", action="store_true")
    ap.add_argument("--held_out", type=int, default=0, help="held-out word occurrences")
    ap.add_argument("--captions", default=None, help="TSV of real captions (first column)")
    ap.add_argument("--caption_vocab_size", type=int, default=4000)
    args = ap.parse_args()
    for n in args.words:
        held_out = held_out_words(n, args.held_out) if args.held_out else []
        report(f"Zipf {n:,}", zipf_word_counts(n), args.vocab_size, args.lower_thresh, args,
               held_out)
    if args.captions:
        with open(args.captions, encoding="utf-8") as f:
            captions = [line.split("\t", 1)[0] for line in f if line.strip()]
        random.Random(0).shuffle(captions)
        cut = len(captions) * 4 // 5
        words = basic_tokenize(captions[:cut], make_tokenizer=_basic_tokenizer)
        counts: Dict[str, int] = {}
        for word in words:
            counts[word] = counts.get(word, 0) + 1
        held_out = basic_tokenize(captions[cut:], make_tokenizer=_basic_tokenizer)
        report(f"captions of {args.captions} (80% learned, 20% held out)", counts,
               args.caption_vocab_size, args.lower_thresh, args, held_out)


def _basic_tokenizer():
    from tensorflow_text.python.ops import bert_tokenizer

    return bert_tokenizer.BasicTokenizer(lower_case=True)


if __name__ == "__main__":
    main()
