"""tensorflow_text's WordPiece learner with its threshold-independent first pass done once.

`learn(...)` returns exactly what `tensorflow_text.tools.wordpiece_vocab.
wordpiece_tokenizer_learner_lib.learn(...)` returns for the same arguments (tests/pipeline/
test_wordpiece_learner.py compares them), and reuses that module's helpers. Why it exists: the
library binary-searches a piece-count threshold (~10-20 steps), and each step runs
`num_iterations` (4) counting passes over every word. The first pass counts every substring of
every word, then subtracts each piece's count from its prefixes: nothing in it depends on the
threshold, which only selects the pieces with a count >= it afterwards. It is also the most
expensive pass (~40% of a step: all O(len^2) substrings, where later passes only start at the
current split points). Here it runs once for the whole search. The learner is the one
single-worker step of a curation run (docs/SCALE.md), so this matters most on large corpora.

The counting code below follows the library's `learn_with_thresh` (Apache-2.0, TF.Text Authors),
split into a pass that returns the counts and a selection by threshold.
"""
from typing import Dict, List, Optional, Sequence, Tuple

Visited = List[Tuple[str, int]]  # (piece, count after the prefix subtractions), in pass order


def counting_pass(lib, word_counts, curr_tokens: Optional[dict], params) -> Visited:
    """One counting pass of the library's learn_with_thresh. `curr_tokens` None: the first pass
    (every split point); otherwise split points from the current pieces."""
    subtokens = [dict() for _ in range(params.max_token_length + 1)]
    for word, count in word_counts:
        if curr_tokens is None:
            split_indices = range(1, len(word) + 1)
        else:
            split_indices = lib.get_split_indices(word, curr_tokens, params.include_joiner_token,
                                                  params.joiner)
            if not split_indices:
                continue
        start = 0
        for index in split_indices:
            for end in range(start + 1, len(word) + 1):
                subtoken = word[start:end]
                length = len(subtoken)
                if params.include_joiner_token and start > 0:
                    subtoken = params.joiner + subtoken
                by_length = subtokens[length]
                by_length[subtoken] = by_length.get(subtoken, 0) + count
            start = index
    visited = []
    joiner_len = len(params.joiner)
    for length in range(params.max_token_length, 0, -1):
        for token, count in subtokens[length].items():
            visited.append((token, count))  # final: only shorter pieces are decremented below
            if len(token) > length:  # the piece carries the joiner
                for i in range(1 + joiner_len, length + joiner_len):
                    prefix = token[0:i]
                    if prefix in subtokens[i - joiner_len]:
                        subtokens[i - joiner_len][prefix] -= count
            else:
                for i in range(1, length):
                    prefix = token[0:i]
                    if prefix in subtokens[i]:
                        subtokens[i][prefix] -= count
    return visited


def learn_with_thresh(lib, word_counts, thresh: int, params, first_pass: Visited) -> List[str]:
    """The library's learn_with_thresh, with the first pass given."""
    char_tokens = lib.extract_char_tokens(word_counts)
    curr_tokens = lib.ensure_all_tokens_exist(char_tokens, {}, params.include_joiner_token,
                                              params.joiner)
    for iteration in range(params.num_iterations):
        visited = first_pass if iteration == 0 else counting_pass(lib, word_counts, curr_tokens,
                                                                  params)
        next_tokens: Dict[str, int] = {}
        for token, count in visited:
            if count >= thresh:
                next_tokens[token] = count
        previous = curr_tokens
        curr_tokens = lib.ensure_all_tokens_exist(char_tokens, next_tokens,
                                                  params.include_joiner_token, params.joiner)
        if iteration > 0 and curr_tokens.keys() == previous.keys():
            # A pass depends only on which pieces the previous one kept (get_split_indices tests
            # membership): the next pass would repeat this one and give these same counts.
            break
    return lib.generate_final_vocabulary(params.reserved_tokens, char_tokens, curr_tokens)


def learn(lib, word_counts, vocab_size: int, reserved_tokens: Sequence[str],
          upper_thresh: Optional[int] = int(1e7), lower_thresh: Optional[int] = 10,
          num_iterations: int = 4, max_input_tokens: Optional[int] = int(5e6),
          max_token_length: int = 50, max_unique_chars: int = 1000, slack_ratio: float = 0.05,
          include_joiner_token: bool = True, joiner: str = "##",
          try_lower_thresh_first: bool = False, trace: Optional[dict] = None) -> List[str]:
    """Same arguments and result as the library's learn(); `lib` is that module.

    `try_lower_thresh_first`: before the search, learn at the threshold the library's learn() with
    upper_thresh = lower_thresh would use (lower_thresh itself, unless every word is rarer or
    more frequent than it) and return that vocabulary if it has at most `vocab_size` entries: no
    threshold the search allows gives more pieces, and a corpus too small to fill the vocabulary
    then learns in one step instead of ~10-20. The first counting pass serves both.

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
    params = lib.Params(upper_thresh, lower_thresh, num_iterations, max_input_tokens,
                        max_token_length, max_unique_chars, vocab_size, slack_ratio,
                        include_joiner_token, joiner, list(reserved_tokens))
    upper, lower = lib.get_search_threshs(word_counts, params.upper_thresh, params.lower_thresh)
    all_counts = lib.get_input_words(word_counts, params.reserved_tokens, params.max_token_length)
    allowed_chars = lib.get_allowed_chars(all_counts, params.max_unique_chars)
    counts = lib.filter_input_words(all_counts, allowed_chars, params.max_input_tokens)
    trace = {} if trace is None else trace
    trace.update(search_lower=lower, search_upper=upper, first_try=None, steps=[],
                 slack_ratio=params.slack_ratio,
                 words_learned_from=len(counts), alphabet=len(lib.extract_char_tokens(counts)),
                 characters_seen=len(lib.extract_char_tokens(all_counts)),
                 max_unique_chars=params.max_unique_chars,
                 words_outside_alphabet=sum(1 for word, _ in all_counts
                                            if not allowed_chars.issuperset(word)),
                 rarest_word_count=min((n for _, n in counts), default=None))
    first_try = None
    if try_lower_thresh_first:
        first_try = sum(lib.get_search_threshs(word_counts, params.lower_thresh,
                                               params.lower_thresh)) // 2
        trace["first_try"] = first_try
    # Every threshold tried is >= min(lower, upper) - 1 (or first_try), so rarer pieces can never
    # be selected.
    floor = min(lower, upper, first_try if first_try is not None else upper) - 1
    first_pass = [(token, n) for token, n in counting_pass(lib, counts, None, params) if n >= floor]
    if first_try is not None:
        vocab = learn_with_thresh(lib, counts, first_try, params, first_pass)
        trace["steps"].append([first_try, len(vocab)])
        if len(vocab) <= params.vocab_size:
            trace["final_threshold"] = first_try
            return vocab
    slack_count = max(0, params.slack_ratio * params.vocab_size)
    while True:  # the library's learn_binary_search, as a loop
        thresh = (upper + lower) // 2
        vocab = learn_with_thresh(lib, counts, thresh, params, first_pass)
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
