"""Benchmark: wall time of the single-worker WordPiece learning step of BuildVocab.

pipeline/vocab.py hands at most `max_input_words` (word, count) pairs to tensorflow_text's
learner (pure Python, one process); this measures how its time grows with that number, on
synthetic Zipf-like word counts (random letter strings, count ~ 1e6 / rank).

Usage: nice .venv/bin/python bench/vocab_learner.py --words 20000 80000 --vocab_size 8000
       [--compare_library]: also times tensorflow_text's own learn() on the same input (same
       vocabulary, checked) and prints library time / ours, both in CPU seconds of this process.
"""
import argparse
import random
import time

from pipeline.vocab import BERT_RESERVED_TOKENS, _wordpiece_learner_lib, alphabet_bound, \
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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--words", type=int, nargs="+", default=[20000])
    ap.add_argument("--vocab_size", type=int, default=8000)
    ap.add_argument("--compare_library", action="store_true")
    args = ap.parse_args()
    for n in args.words:
        counts = zipf_word_counts(n)
        start, start_cpu = time.perf_counter(), time.process_time()
        vocab = learn_wordpiece(counts, args.vocab_size)
        seconds, cpu = time.perf_counter() - start, time.process_time() - start_cpu
        print(f"{n} input words -> {len(vocab)} wordpieces (requested {args.vocab_size}) "
              f"in {seconds:.1f} s, {cpu:.1f} CPU-s ({n / seconds:,.0f} input words/s)")
        if args.compare_library:  # what learn_wordpiece did before pipeline/wordpiece_learner.py
            lib, start_cpu = _wordpiece_learner_lib(), time.process_time()
            reference = lib.learn(sorted(counts.items()), args.vocab_size,
                                  list(BERT_RESERVED_TOKENS), lower_thresh=10,
                                  max_unique_chars=alphabet_bound(args.vocab_size,
                                                                  BERT_RESERVED_TOKENS))
            library_cpu = time.process_time() - start_cpu
            same = reference[:args.vocab_size] == vocab
            print(f"  tensorflow_text learn(): {library_cpu:.1f} CPU-s, same vocabulary: {same}; "
                  f"library / ours = {library_cpu / cpu:.2f}")


if __name__ == "__main__":
    main()
