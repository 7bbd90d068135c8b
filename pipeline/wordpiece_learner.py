"""tensorflow_text's WordPiece vocabulary learner, ported: same vocabulary, no TensorFlow needed.

`learn(...)` returns exactly what `tensorflow_text.tools.wordpiece_vocab.
wordpiece_tokenizer_learner_lib.learn(...)` (the library behind `bert_vocab_from_dataset`,
tensorflow_text 2.21.1) returns for the same arguments; tests/pipeline/test_wordpiece_learner.py
compares them when tensorflow_text is importable. The input filters, the threshold search and the
final ordering below are the library's code (Apache-2.0, Copyright The TF.Text Authors), vendored;
only the counting pass is computed differently, because the library's is what made it slow
(~3 h extrapolated at 1M words, docs/BENCHMARKS.md).

The library's counting pass, for every word w (count c) and every start s of the pass (iteration
0: every position; later: the starts of w's greedy longest-match split into the current pieces),
adds c to every substring w[s:e], e = s+1 .. len(w) (with the joiner when s > 0), and then, from
the longest pieces to the shortest, subtracts each piece's final count from all its prefixes.
By induction over that order a piece P's final count is raw(P) minus the raw counts of its
one-character extensions P+x, i.e. the weight of the (word, start) occurrences where P reaches
the END of the word: the final count of `P` is the count of the word P itself (start 0) and that of
`##P` the total count of the words in which a start of the pass is followed by exactly P. So a pass
is one greedy split per word plus one dictionary addition per piece boundary, instead of
O(len(w)^2) substrings with their prefix subtractions, and iteration 0 does not depend on the
threshold: it is computed once for the whole search. What stays exactly as in the library,
including its corner cases: a piece is kept when its count is >= the threshold; `P` and `##P`
compete for one string key in the library's dictionary (a word may itself start with the joiner),
the `##` one winning when kept, as in its visiting order; a word that cannot be split adds nothing;
with a threshold <= 0 every prefix at a start is kept, with count 0 when it does not end the word.

The passes run in numpy (`_SplitGraph`: the words' distinct suffixes numbered once, a pass being
a few vectorized operations over them) when there is a joiner and no word starts with it (always
so for BasicTokenizer words: "#" is split off as punctuation), else per word in Python
(`use_numpy=False` forces that). ~33 CPU-s at 1M words and a 100k vocabulary on a shared 2-core
machine, where tensorflow_text's learner takes hours (bench/vocab_learner.py,
docs/BENCHMARKS.md). Also stops a step's passes early when a pass keeps the pieces it split
with (the next pass would split and count the same), and `try_lower_thresh_first` (see `learn`).
"""
import collections
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

Params = collections.namedtuple("Params", [
    "upper_thresh", "lower_thresh", "num_iterations", "max_input_tokens", "max_token_length",
    "max_unique_chars", "vocab_size", "slack_ratio", "include_joiner_token", "joiner",
    "reserved_tokens"])

WordCounts = List[Tuple[str, int]]


def tensorflow_text_learner():
    """tensorflow_text's own learner module (the reference: tests, bench/vocab_learner.py), or
    None when tensorflow_text is not installed. Loaded from its file: importing it through the
    package would run tensorflow_text/__init__, which imports TensorFlow (~5 CPU-s)."""
    import importlib.util
    import os
    import sys

    name = "_align_wordpiece_learner_lib"
    if name in sys.modules:
        return sys.modules[name]
    try:
        package = importlib.util.find_spec("tensorflow_text")  # locates, does not execute
    except (ImportError, ValueError):
        return None
    if package is None or package.origin is None:
        return None
    path = os.path.join(os.path.dirname(package.origin), "tools", "wordpiece_vocab",
                        "wordpiece_tokenizer_learner_lib.py")
    if not os.path.exists(path):
        return None
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[name] = module
    return module


# --- The library's helpers (wordpiece_tokenizer_learner_lib.py, Apache-2.0, TF.Text Authors) ---

def extract_char_tokens(word_counts) -> Set[str]:
    seen_chars = set()
    for word, _ in word_counts:
        seen_chars.update(word)
    return seen_chars


def ensure_all_tokens_exist(input_tokens, output_tokens: dict, include_joiner_token: bool,
                            joiner: str) -> dict:
    for token in input_tokens:
        if token not in output_tokens:
            output_tokens[token] = 1
        if include_joiner_token:
            joined_token = joiner + token
            if joined_token not in output_tokens:
                output_tokens[joined_token] = 1
    return output_tokens


def get_search_threshs(word_counts, upper_thresh, lower_thresh) -> Tuple[int, int]:
    counts = [count for _, count in word_counts]
    max_count, min_count = max(counts), min(counts)
    if upper_thresh is None:
        upper_search = max_count
    else:
        upper_search = max_count if max_count < upper_thresh else upper_thresh
    if lower_thresh is None:
        lower_search = min_count
    else:
        lower_search = min_count if min_count > lower_thresh else lower_thresh
    return upper_search, lower_search


def get_input_words(word_counts, reserved_tokens, max_token_length) -> WordCounts:
    return [(word, count) for word, count in word_counts
            if not (len(word) > max_token_length or word in reserved_tokens)]


def get_allowed_chars(all_counts, max_unique_chars) -> Set[str]:
    char_counts: Dict[str, int] = collections.defaultdict(int)
    for word, count in all_counts:
        for char in word:
            char_counts[char] += count
    # Sort by count, then alphabetically.
    sorted_counts = sorted(sorted(char_counts.items(), key=lambda x: x[0]),
                           key=lambda x: x[1], reverse=True)
    return {char for char, _ in sorted_counts[:max(0, max_unique_chars)]}


def filter_input_words(all_counts, allowed_chars, max_input_tokens) -> WordCounts:
    all_counts = sorted(all_counts, key=lambda word_and_count: word_and_count[1], reverse=True)
    filtered_counts = []
    for word, count in all_counts:
        if max_input_tokens != -1 and len(filtered_counts) >= max_input_tokens:
            break
        if allowed_chars.issuperset(word):
            filtered_counts.append((word, count))
    return filtered_counts


def generate_final_vocabulary(reserved_tokens, char_tokens, curr_tokens: dict) -> List[str]:
    vocab = list(reserved_tokens) + sorted(char_tokens)
    # Sort by count, then alphabetically.
    vocab += [token for token, _ in sorted(sorted(curr_tokens.items(), key=lambda x: x[0]),
                                           key=lambda x: x[1], reverse=True)]
    return list(dict.fromkeys(vocab))  # first occurrence of each, in order


# --- The counting pass, computed from piece ends (see the module docstring) ---

class _Counts:
    """Final counts of one pass: `whole[w]` (pieces at start 0: whole words) and `suffix[s]`
    (pieces after a start > 0, the joiner not included). Without a joiner both go to `whole`."""

    def __init__(self):
        self.whole: Dict[str, int] = {}
        self.suffix: Dict[str, int] = {}


def _first_pass(word_counts: WordCounts, joined: bool) -> _Counts:
    """Iteration 0: every position is a start."""
    counts = _Counts()
    whole, suffix = counts.whole, (counts.suffix if joined else counts.whole)
    for word, count in word_counts:
        if not word:
            continue
        whole[word] = whole.get(word, 0) + count
        for start in range(1, len(word)):
            piece = word[start:]
            suffix[piece] = suffix.get(piece, 0) + count
    return counts


def _split_pass(word_counts: WordCounts, whole_tokens: Set[str], suffix_tokens: Set[str],
                joined: bool) -> _Counts:
    """Iterations > 0: starts of the greedy split of each word into the current pieces
    (`whole_tokens` at start 0, `suffix_tokens` after it, joiner stripped). The split after the
    first piece depends only on the rest of the word, so each distinct rest is split once, the
    longest first, its count (of all the words reaching it) flowing on to the next rest."""
    counts = _Counts()
    whole = counts.whole
    suffix = counts.suffix if joined else counts.whole
    arriving: Dict[str, int] = {}  # rest of a word after a piece -> total count arriving there
    by_length: Dict[int, List[str]] = collections.defaultdict(list)
    longest_whole = max(map(len, whole_tokens), default=0)
    longest_suffix = max(map(len, suffix_tokens), default=0)
    for word, count in word_counts:
        n = len(word)
        end = _longest_piece(word, whole_tokens, longest_whole)
        if end == 0:
            continue  # no first piece: the library skips the word
        whole[word] = whole.get(word, 0) + count
        if end < n:
            _arrive(word[end:], count, arriving, by_length)
    for n in range(max(by_length, default=0), 0, -1):  # a rest's next rest is shorter
        for rest in by_length.pop(n, ()):
            end = _longest_piece(rest, suffix_tokens, longest_suffix)
            if end == 0:  # a word that cannot be split: redo per word, it must add nothing
                return _split_pass_exact(word_counts, whole_tokens, suffix_tokens, joined)
            count = arriving[rest]
            suffix[rest] = suffix.get(rest, 0) + count
            if end < n:
                _arrive(rest[end:], count, arriving, by_length)
    return counts


def _longest_piece(text: str, tokens: Set[str], longest: int) -> int:
    """Length of the longest prefix of `text` in `tokens` (0: none); `longest` bounds it."""
    end = min(len(text), longest)
    while end > 0 and text[:end] not in tokens:
        end -= 1
    return end


def _arrive(rest: str, count: int, arriving: Dict[str, int],
            by_length: Dict[int, List[str]]) -> None:
    """`count` words reach `rest`; a rest seen for the first time is queued by its length."""
    if rest in arriving:
        arriving[rest] += count
    else:
        arriving[rest] = count
        by_length[len(rest)].append(rest)


def _split_pass_exact(word_counts, whole_tokens, suffix_tokens, joined) -> _Counts:
    """Per-word version of `_split_pass` (a word that cannot be split adds nothing)."""
    counts = _Counts()
    whole, suffix = counts.whole, (counts.suffix if joined else counts.whole)
    for word, count in word_counts:
        for start in _starts(word, whole_tokens, suffix_tokens) or ():
            target = whole if start == 0 else suffix
            target[word[start:]] = target.get(word[start:], 0) + count
    return counts


def _starts(word: str, whole_tokens, suffix_tokens) -> Optional[List[int]]:
    """Start of each piece of the library's greedy longest-match split (its get_split_indices
    returns the ends), or None when a word cannot be split."""
    starts, start = [], 0
    while start < len(word):
        tokens = whole_tokens if start == 0 else suffix_tokens
        end = len(word)
        while end > start and word[start:end] not in tokens:
            end -= 1
        if end == start:
            return None
        starts.append(start)
        start = end
    return starts or None


def _select(counts: _Counts, thresh: int, params: Params, word_counts: WordCounts,
            split_with: Optional[Tuple[Set[str], Set[str]]]) -> Dict[str, int]:
    """The pieces kept at `thresh` ({piece with joiner: count}), as the library's dictionary."""
    joined = params.include_joiner_token and params.joiner != ""
    whole, suffix = counts.whole, counts.suffix
    if thresh <= 0:  # every prefix at a start is kept, with count 0 when it ends no word
        whole, suffix = dict(whole), dict(suffix)
        for is_suffix, piece in _prefixes_at_starts(word_counts, joined, split_with):
            (suffix if is_suffix else whole).setdefault(piece, 0)
    next_tokens = {word: count for word, count in whole.items() if count >= thresh}
    # `##P` is visited after the word `##P` (its substring is shorter): it wins when kept.
    joiner = params.joiner
    next_tokens.update((joiner + piece, count) for piece, count in suffix.items()
                       if count >= thresh)
    return next_tokens


def _prefixes_at_starts(word_counts, joined, split_with) -> Iterable[Tuple[bool, str]]:
    for word, _ in word_counts:
        if split_with is None:
            starts = range(len(word))
        else:
            starts = _starts(word, *split_with)
            if starts is None:
                continue
        for start in starts:
            for end in range(start + 1, len(word) + 1):
                yield joined and start > 0, word[start:end]


class _SplitGraph:
    """The counting passes in numpy, for the usual case (a joiner, no word starting with it, so
    that `P` and `##P` never share a string; positive counts). Built once per learn() call:

    - nodes: the distinct proper suffixes of the words (the rests after a piece: `##` pieces are
      always among them, their count being the weight of the words ending in them), numbered by
      decreasing length so that a rest's next rest comes later;
    - for each node r its candidate first pieces r[:k], in increasing k, with the node r[k:]
      that follows (-1 at the end): k = 1 (always a piece: every character is), and each longer
      prefix that is itself a node whose count can reach `floor`, the lowest threshold the
      search can try (a node's count in any pass is at most its count in pass 0, where every
      position is a start: each word reaches a given suffix of it at most once);
    - the same for each word, whose first pieces are words (pieces at start 0 are whole words)
      seen at least `floor` times.

    A pass is then: the longest valid candidate of every word and node (a segmented max), and
    the counts flowing from each word to its first rest and from each rest to the next, one
    length level at a time. The greedy split and counts are the library's (module docstring)."""

    def __init__(self, word_counts: WordCounts, floor: int):
        import numpy as np

        self.np = np
        self.floor = floor
        merged: Dict[str, int] = {}
        for word, count in word_counts:
            if word:
                merged[word] = merged.get(word, 0) + count
        self.words = words = list(merged)
        self.counts = np.fromiter(merged.values(), dtype=np.int64, count=len(merged))
        nodes = sorted({word[i:] for word in words for i in range(1, len(word))},
                       key=len, reverse=True)
        self.nodes = nodes
        node_id = {node: i for i, node in enumerate(nodes)}
        lengths = np.fromiter(map(len, nodes), dtype=np.int64, count=len(nodes))
        ends = np.flatnonzero(np.diff(lengths)) + 1
        self.levels = list(zip(np.concatenate([[0], ends]).tolist(),
                               np.concatenate([ends, [len(nodes)]]).tolist()))
        self.single_char = lengths == 1
        # r[1:] of every node and word: the rest after a one-character piece (-1: none).
        get = node_id.get
        self.node_next1 = np.fromiter((get(node[1:], -1) for node in nodes), dtype=np.int64,
                                      count=len(nodes))
        self.word_next1 = np.fromiter((get(word[1:], -1) for word in words), dtype=np.int64,
                                      count=len(words))
        self.first_pass_counts = self._flow(self.word_next1, self.node_next1)
        del node_id, get
        node_pieces = np.flatnonzero((self.first_pass_counts >= floor) & (lengths > 1))
        word_pieces = np.flatnonzero(self.counts >= floor)
        self.node_cands = self._candidates(nodes, self.node_next1, node_pieces, self.node_next1)
        self.word_cands = self._candidates(words, self.word_next1, word_pieces, self.node_next1)

    def _candidates(self, strings, next1, pieces, node_next1):
        """(segment starts, piece id or -1 for the always-present character, following node
        or -1) of every string's candidate first pieces, in increasing length. `pieces`: ids
        (among `strings`) of those that can be a first piece, besides single characters."""
        import bisect

        np = self.np
        order = sorted(range(len(strings)), key=strings.__getitem__)
        in_order = [strings[i] for i in order]
        order = np.array(order, dtype=np.int64)
        piece_strings = [strings[i] for i in pieces.tolist()]
        lo = np.fromiter((bisect.bisect_left(in_order, piece) for piece in piece_strings),
                         dtype=np.int64, count=len(piece_strings))
        hi = np.fromiter((bisect.bisect_left(in_order, piece + "\U0010ffff")
                          for piece in piece_strings), dtype=np.int64, count=len(piece_strings))
        del in_order
        k = np.fromiter(map(len, piece_strings), dtype=np.int64, count=len(piece_strings))
        sizes = hi - lo  # strings starting with the piece (itself included)
        total = int(sizes.sum())
        offsets = np.repeat(lo - (np.cumsum(sizes) - sizes), sizes) + np.arange(total)
        owner = order[offsets]
        piece = np.repeat(pieces, sizes)
        length = np.repeat(k, sizes)
        # The node after the piece: r[k:], i.e. r[1:] and then k - 1 more steps along node_next1.
        rest = next1[owner]
        for step in range(1, int(k.max(initial=1))):
            more = (length > step) & (rest >= 0)
            rest[more] = node_next1[rest[more]]
        n = len(strings)
        owner = np.concatenate([np.arange(n, dtype=np.int64), owner])
        piece = np.concatenate([np.full(n, -1, dtype=np.int64), piece])
        rest = np.concatenate([next1, rest])
        length = np.concatenate([np.ones(n, dtype=np.int64), length])
        by_owner = np.lexsort((length, owner))
        starts = np.searchsorted(owner[by_owner], np.arange(n))
        return starts, piece[by_owner], rest[by_owner]

    def _next(self, cands, selected):
        """Following node of each string after its longest valid first piece."""
        np = self.np
        starts, prefix, rest = cands
        valid = (prefix < 0) | selected[prefix]
        best = np.maximum.reduceat(np.where(valid, np.arange(len(prefix)), -1), starts)
        return rest[best]

    def _flow(self, word_next, node_next):
        """Count arriving at each node: from the words' first pieces, then rest to rest."""
        np = self.np
        arriving = np.zeros(len(self.nodes), dtype=np.int64)
        has = word_next >= 0
        np.add.at(arriving, word_next[has], self.counts[has])
        for a, b in self.levels:
            following, count = node_next[a:b], arriving[a:b]
            has = (following >= 0) & (count != 0)
            if has.any():
                np.add.at(arriving, following[has], count[has])
        return arriving

    def first_pass(self):
        return self.first_pass_counts

    def learn_with_thresh(self, thresh: int, params: Params, char_tokens, first_pass
                          ) -> List[str]:
        np = self.np
        if thresh < self.floor:
            raise ValueError(f"threshold {thresh} below the graph's floor {self.floor}")
        word_selected = self.counts >= thresh
        word_next = None
        arriving = first_pass
        selected = arriving >= thresh
        for iteration in range(1, params.num_iterations):
            if word_next is None:
                word_next = self._next(self.word_cands, word_selected)
            arriving = self._flow(word_next, self._next(self.node_cands, selected))
            previous, selected = selected, arriving >= thresh
            if np.array_equal(previous | self.single_char, selected | self.single_char):
                break  # the same pieces as the pass before: the next pass would repeat it
        curr_tokens = {self.words[i]: int(self.counts[i]) for i in np.flatnonzero(word_selected)}
        joiner = params.joiner
        curr_tokens.update((joiner + self.nodes[i], int(arriving[i]))
                           for i in np.flatnonzero(selected))
        curr_tokens = ensure_all_tokens_exist(char_tokens, curr_tokens, True, joiner)
        return generate_final_vocabulary(params.reserved_tokens, char_tokens, curr_tokens)


def _use_graph(word_counts: WordCounts, params: Params) -> bool:
    if not (params.include_joiner_token and params.joiner) or params.num_iterations < 1:
        return False
    joiner = params.joiner
    return not any(word.startswith(joiner) or count < 1 for word, count in word_counts)


def _token_sets(curr_tokens: dict, params: Params) -> Tuple[Set[str], Set[str]]:
    """(pieces allowed at start 0, pieces allowed after it without their joiner)."""
    whole = set(curr_tokens)
    if params.include_joiner_token:
        n = len(params.joiner)
        return whole, {token[n:] for token in whole if token.startswith(params.joiner)}
    return whole, whole


def learn_with_thresh(word_counts: WordCounts, thresh: int, params: Params,
                      first_pass: _Counts) -> List[str]:
    """The library's learn_with_thresh, iteration 0's counts given."""
    joined = params.include_joiner_token and params.joiner != ""
    char_tokens = extract_char_tokens(word_counts)
    curr_tokens = ensure_all_tokens_exist(char_tokens, {}, params.include_joiner_token,
                                          params.joiner)
    for iteration in range(params.num_iterations):
        if iteration == 0:
            counts, split_with = first_pass, None
        else:
            split_with = _token_sets(curr_tokens, params)
            counts = _split_pass(word_counts, *split_with, joined)
        previous = curr_tokens
        curr_tokens = ensure_all_tokens_exist(
            char_tokens, _select(counts, thresh, params, word_counts, split_with),
            params.include_joiner_token, params.joiner)
        if iteration > 0 and curr_tokens.keys() == previous.keys():
            break  # the next pass would split as this one did and give the same counts
    return generate_final_vocabulary(params.reserved_tokens, char_tokens, curr_tokens)


def learn(word_counts, vocab_size: int, reserved_tokens: Sequence[str],
          upper_thresh: Optional[int] = int(1e7), lower_thresh: Optional[int] = 10,
          num_iterations: int = 4, max_input_tokens: Optional[int] = int(5e6),
          max_token_length: int = 50, max_unique_chars: int = 1000, slack_ratio: float = 0.05,
          include_joiner_token: bool = True, joiner: str = "##",
          try_lower_thresh_first: bool = False, trace: Optional[dict] = None,
          use_numpy: bool = True) -> List[str]:
    """Same arguments and result as the library's learn() (word_counts: dict or (word, count)
    pairs; the library's result depends on their order only through ties of
    `max_input_tokens`).

    `try_lower_thresh_first`: before the search, learn at the threshold the library's learn() with
    upper_thresh = lower_thresh would use (lower_thresh itself, unless every word is rarer or
    more frequent than it) and return that vocabulary if it has at most `vocab_size` entries: no
    threshold the search allows gives more pieces, and a corpus too small to fill the vocabulary
    then learns in one step instead of ~10-20.

    `trace`: a dict filled in place with how the result was found (the result is unchanged):
    `search_lower` / `search_upper` (the library's clipped search bounds), `first_try` (or None),
    `slack_ratio`, `max_unique_chars`, `characters_seen` (in the words, before that bound),
    `words_outside_alphabet` (words with a character outside the bound: not learned from),
    `words_learned_from` (after the length / reserved / alphabet / max_input_tokens filters),
    `alphabet` (distinct characters of those words), `rarest_word_count` (the lowest count among
    them, None without words), `steps` ([threshold, vocabulary size] per learning step, in
    order) and `final_threshold` (the threshold of the returned vocabulary)."""
    if isinstance(word_counts, dict):
        word_counts = word_counts.items()
    word_counts = list(word_counts)
    if max_input_tokens is None:
        max_input_tokens = -1
    params = Params(upper_thresh, lower_thresh, num_iterations, max_input_tokens,
                    max_token_length, max_unique_chars, vocab_size, slack_ratio,
                    include_joiner_token, joiner, list(reserved_tokens))
    upper, lower = get_search_threshs(word_counts, params.upper_thresh, params.lower_thresh)
    all_counts = get_input_words(word_counts, params.reserved_tokens, params.max_token_length)
    allowed_chars = get_allowed_chars(all_counts, params.max_unique_chars)
    counts = filter_input_words(all_counts, allowed_chars, params.max_input_tokens)
    trace = {} if trace is None else trace
    trace.update(search_lower=lower, search_upper=upper, first_try=None, steps=[],
                 slack_ratio=params.slack_ratio,
                 words_learned_from=len(counts), alphabet=len(extract_char_tokens(counts)),
                 characters_seen=len(extract_char_tokens(all_counts)),
                 max_unique_chars=params.max_unique_chars,
                 words_outside_alphabet=sum(1 for word, _ in all_counts
                                            if not allowed_chars.issuperset(word)),
                 rarest_word_count=min((n for _, n in counts), default=None))
    first_try = None
    if try_lower_thresh_first:
        first_try = sum(get_search_threshs(word_counts, params.lower_thresh,
                                           params.lower_thresh)) // 2
    # Every threshold tried is >= min(lower, upper) - 1 (or first_try): the graph leaves out the
    # pieces rarer than that.
    floor = max(1, min(lower, upper, upper if first_try is None else first_try) - 1)
    graph = _SplitGraph(counts, floor) if use_numpy and _use_graph(counts, params) else None
    trace["counting"] = "numpy" if graph is not None else "python"
    first_pass = graph.first_pass() if graph is not None else \
        _first_pass(counts, include_joiner_token and joiner != "")
    char_tokens = extract_char_tokens(counts)

    def learn_at(thresh):
        if graph is not None and thresh >= graph.floor:
            return graph.learn_with_thresh(thresh, params, char_tokens, first_pass)
        if graph is not None:  # below the floor (cannot happen) or counts with zeros
            return learn_with_thresh(counts, thresh, params,
                                     _first_pass(counts, include_joiner_token and joiner != ""))
        return learn_with_thresh(counts, thresh, params, first_pass)

    if try_lower_thresh_first:
        trace["first_try"] = first_try
        vocab = learn_at(first_try)
        trace["steps"].append([first_try, len(vocab)])
        if len(vocab) <= params.vocab_size:
            trace["final_threshold"] = first_try
            return vocab
    slack_count = max(0, params.slack_ratio * params.vocab_size)
    while True:  # the library's learn_binary_search, as a loop
        thresh = (upper + lower) // 2
        vocab = learn_at(thresh)
        trace["steps"].append([thresh, len(vocab)])
        trace["final_threshold"] = thresh
        within_slack = (len(vocab) <= params.vocab_size
                        and params.vocab_size - len(vocab) <= slack_count)
        if within_slack or lower >= upper or thresh <= 1:
            return vocab
        if len(vocab) > params.vocab_size:
            lower = thresh + 1
        else:
            upper = thresh - 1
