import pytest

from pipeline.token_counts import (
    CountOfCountsFn,
    TokenCountFn,
    frequency_cutoff,
    merge_token_counts,
    rare_token_flags,
    token_counts_of_pair,
    tokens_of,
)

# red bus, red bus, red car, blue car: red 3; bus, car, "red bus" 2; blue, "red car", "blue car" 1
COUNT_OF_COUNTS = {3: 1, 2: 3, 1: 3}


def test_tokens_of_are_unigrams_then_bigrams():
    assert tokens_of("A red bus!") == ["a", "red", "bus", "a red", "red bus"]


def test_token_counts_of_pair_counts_repeats_once_per_key():
    assert sorted(token_counts_of_pair(("k", "bye bye bye"))) == [
        ("bye", (3, ("k",))), ("bye bye", (2, ("k",)))]


@pytest.mark.parametrize(
    "top_n, min_count_kept, tokens_kept",
    [
        (0, 4, 0),  # nothing fits: every token is rare
        (1, 3, 1),
        (3, 3, 1),  # the three tokens tied at count 2 do not fit in 3 slots: all rare
        (4, 2, 4),
        (6, 2, 4),  # tie at count 1 (3 tokens) would give 7 > 6
        (7, 1, 7),  # everything fits: nothing rare
        (10**8, 1, 7),
    ],
)
def test_frequency_cutoff_ties(top_n, min_count_kept, tokens_kept):
    assert frequency_cutoff(COUNT_OF_COUNTS, top_n) == {
        "distinct_tokens": 7, "min_count_kept": min_count_kept, "tokens_kept": tokens_kept,
        "top_n_tokens": top_n}


def test_frequency_cutoff_empty_and_key_bound():
    assert frequency_cutoff({}, 5) == {
        "distinct_tokens": 0, "min_count_kept": 1, "tokens_kept": 0, "top_n_tokens": 5}
    assert frequency_cutoff(COUNT_OF_COUNTS, 4, max_keys_per_token=1)["min_count_kept"] == 2
    with pytest.raises(ValueError, match="max_keys_per_token"):
        frequency_cutoff(COUNT_OF_COUNTS, 1, max_keys_per_token=1)  # rare tokens up to count 2


def test_merge_token_counts_keeps_keys_only_up_to_bound():
    assert merge_token_counts([(1, ("a",)), (2, ("b",))], max_keys=3) == (3, ("a", "b"))
    assert merge_token_counts([(1, ("a",)), (3, ("b",))], max_keys=3) == (4, None)
    assert merge_token_counts([(5, None), (1, ("c",))], max_keys=100) == (6, None)


def test_token_count_fn_and_count_of_counts_fn():
    fn = TokenCountFn(max_keys=2)
    acc = fn.add_input(fn.create_accumulator(), (1, ("a",)))
    acc = fn.merge_accumulators([acc, fn.add_input(fn.create_accumulator(), (1, ("b",)))])
    assert fn.extract_output(acc) == (2, ("a", "b"))
    assert fn.add_input(acc, (1, ("c",))) == (3, None)
    coc = CountOfCountsFn()
    a = coc.add_input(coc.add_input(coc.create_accumulator(), 2), 2)
    assert coc.extract_output(coc.merge_accumulators([a, coc.add_input({}, 7)])) == {2: 2, 7: 1}


def test_rare_token_flags():
    summary = {"min_count_kept": 2}
    assert list(rare_token_flags(("x", (1, ("k1",))), summary)) == [("k1", "rare_token")]
    assert list(rare_token_flags(("y", (2, ("k1", "k2"))), summary)) == []
    with pytest.raises(ValueError):
        list(rare_token_flags(("z", (1, None)), summary))
