"""CuratePairs on a hand-made corpus: the exact outcome and the one reason of every pair."""
import collections
import dataclasses

import apache_beam as beam
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline import readers, reasons, records
from schemas import image_decode as image_io
from pipeline.options import CurationConfig
from pipeline.text_normalize import normalize_text
from pipeline.token_counts import tokens_of
from pipeline.transforms import CuratePairs, judge
from tests.pipeline import image_factory as f

TEXT_A = "a red bus on the street"
TEXT_B = "a blue bus on the street"
SHARED = "the same caption for many images"
LONG = " ".join(["word"] * 21)


def color(i):
    return (i * 37 % 256, i * 91 % 256, i * 53 % 256)


def corpus():
    """(raw pairs, expected (key, status, reason)) covering every reason but near_duplicate."""
    same_image = f.rgb(300, 300, (1, 2, 3))
    rows = [
        ("small", f.rgb(200, 300, color(1)), TEXT_A, None, ("dropped", reasons.IMAGE_TOO_SMALL)),
        ("ratio", f.rgb(201, 603, color(2)), TEXT_A, None, ("dropped", reasons.ASPECT_RATIO)),
        ("many1", same_image, TEXT_A, None, ("dropped", reasons.TOO_MANY_ALT_TEXTS)),
        ("many2", same_image, TEXT_B, None, ("dropped", reasons.TOO_MANY_ALT_TEXTS)),
        ("many3", same_image, "two words", None, ("dropped", reasons.TOO_FEW_WORDS)),  # local 1st
        ("unsafe", f.rgb(300, 300, color(3)), TEXT_B, 0.9, ("dropped", reasons.UNSAFE)),
        ("few", f.rgb(300, 300, color(4)), "two words", None, ("dropped", reasons.TOO_FEW_WORDS)),
        ("blank", f.rgb(300, 300, color(5)), " \t ", None, ("dropped", reasons.TOO_FEW_WORDS)),
        ("long", f.rgb(300, 300, color(6)), LONG, None, ("dropped", reasons.TOO_MANY_WORDS)),
        ("rare", f.rgb(300, 300, color(7)), "a red zyzzyva bus", 0.1,
         ("dropped", reasons.RARE_TOKEN)),
        ("keptA", f.rgb(1000, 500, color(8)), TEXT_A, 0.49, ("kept", None)),
        ("keptB", f.cmyk_jpeg(), TEXT_B, None, ("kept", None)),
        ("noimage", None, TEXT_A, None, ("error", records.MISSING_IMAGE)),
        ("badutf8", f.rgb(300, 300), b"caf\xe9 is good", None,
         ("error", records.INVALID_UTF8_TEXT)),
        ("trunc", f.truncated(f.noisy_png(300, 300)), TEXT_A, None,
         ("error", image_io.TRUNCATED_IMAGE)),
    ]
    rows += [(f"shared{i}", f.rgb(300, 300, color(20 + i)), SHARED, None,
              ("dropped", reasons.ALT_TEXT_SHARED)) for i in range(11)]
    raw = [readers.raw_pair(k, f"http://x/{k}", t.encode() if isinstance(t, str) else t, image,
                            unsafe_score=score) for k, image, t, score, _ in rows]
    expected = [(k, status, reason) for k, _, _, _, (status, reason) in rows]
    return raw, expected


def top_n_keeping_repeated_tokens(raw):
    """top_n_tokens that keeps exactly the tokens seen at least twice in the readable texts."""
    counts = collections.Counter()
    for pair in raw:
        if pair["key"] not in ("noimage", "badutf8", "trunc"):  # errors are not counted
            counts.update(tokens_of(normalize_text(pair["text"].decode())))
    return sum(1 for c in counts.values() if c >= 2)


def test_every_pair_gets_exactly_its_first_reason():
    raw, expected = corpus()
    config = CurationConfig(max_alt_texts_per_image=2, unsafe_score_field="punsafe",
                            top_n_tokens=top_n_keeping_repeated_tokens(raw))
    with TestPipeline(runner=FnApiRunner()) as p:
        result = (p | beam.Create(raw)) | CuratePairs(config)
        assert_that(result["outcomes"] | beam.Map(lambda o: (o[0], o[1], o[2])), equal_to(expected),
                    label="ExactOutcomes")
        assert_that(result["kept_texts"], equal_to([TEXT_A, TEXT_B]), label="KeptTexts")
        assert_that(result["input_pairs"], equal_to([len(raw)]), label="InputPairs")
        assert_that(result["conversion_counts"],
                    equal_to([(image_io.RESIZED, 1), (image_io.CMYK_TO_RGB, 1)]),
                    label="Conversions")
        assert_that(result["unsafe_summary"] | beam.Map(
            lambda s: (s["applied"], s["scored_pairs"], s["unscored_pairs"], s["unsafe_pairs"])),
            equal_to([(True, 3, 14, 1)]), label="UnsafeSummary")  # candidates only
        assert_that(result["samples"] | beam.MapTuple(lambda r, s: (r, sorted(x["key"] for x in s))),
                    equal_to(_expected_samples(expected)), label="SamplesPerReason")


def _expected_samples(expected):
    by_reason = collections.defaultdict(list)
    for key, status, reason in expected:
        if status != "kept":
            by_reason[reason].append(key)
    return [(r, sorted(keys)) for r, keys in by_reason.items()]


def test_unsafe_filter_without_scorer_is_not_applied_and_extra_flags_join_by_key():
    raw, _ = corpus()
    raw = [r for r in raw if r["key"] in ("keptA", "keptB", "small", "unsafe")]
    config = dataclasses.replace(CurationConfig(), top_n_tokens=10**8)
    with TestPipeline(runner=FnApiRunner()) as p:
        flags = p | "ExtraFlags" >> beam.Create([("keptB", reasons.NEAR_DUPLICATE_OF_EVAL),
                                                 ("small", reasons.NEAR_DUPLICATE_OF_EVAL),
                                                 ("no_such_key", reasons.NEAR_DUPLICATE_OF_EVAL)])
        result = (p | beam.Create(raw)) | CuratePairs(config, extra_flags=flags)
        assert_that(result["outcomes"] | beam.Map(lambda o: (o[0], o[1], o[2])), equal_to([
            ("small", "dropped", reasons.IMAGE_TOO_SMALL), ("unsafe", "kept", None),
            ("keptA", "kept", None), ("keptB", "dropped", reasons.NEAR_DUPLICATE_OF_EVAL)]))
        assert_that(result["unsafe_summary"] | beam.Map(lambda s: (s["applied"], s["note"][:11])),
                    equal_to([(False, "NOT APPLIED")]), label="NotApplied")


def test_duplicate_keys_are_counted_as_errors_not_lost():
    one = {"key": "k", "ident": "k\0one", "image_sha256": "b"}
    two = {"key": "k", "ident": "k\0two", "image_sha256": "a"}
    judged = list(judge("k", {"record": [one, two], "flag": [("k\0two", reasons.RARE_TOKEN)]}))
    assert [(j["image_sha256"], j["status"], j["reason"]) for j in judged] == [
        ("a", "dropped", reasons.RARE_TOKEN), ("b", "error", records.DUPLICATE_KEY)]


def test_a_flag_of_one_pair_never_drops_another_pair_with_the_same_key():
    """The pair judged first (image "a") has a unique text; the other pair of the same key
    (image "b") has a shared one. Only "b"'s flag names "b": "a" is kept, "b" is duplicate_key."""
    first = {"key": "k", "ident": "k\0first", "image_sha256": "a"}
    second = {"key": "k", "ident": "k\0second", "image_sha256": "b"}
    judged = list(judge("k", {"record": [second, first],
                              "flag": [("k\0second", reasons.ALT_TEXT_SHARED)]}))
    assert [(j["ident"], j["status"], j["reason"]) for j in judged] == [
        ("k\0first", "kept", None), ("k\0second", "error", records.DUPLICATE_KEY)]
    by_key = list(judge("k", {"record": [first], "flag": [(None, reasons.UNSAFE)]}))
    assert [(j["status"], j["reason"]) for j in by_key] == [("dropped", reasons.UNSAFE)]


def test_pair_identity_differs_by_file_and_position_and_keeps_the_key():
    from pipeline.transforms import key_of, pair_ident
    a = pair_ident({"key": "k\0x", "file": "a.tar", "ordinal": 0})
    assert key_of(a) == "k\0x"
    assert len({a, pair_ident({"key": "k\0x", "file": "b.tar", "ordinal": 0}),
                pair_ident({"key": "k\0x", "file": "a.tar", "ordinal": 1})}) == 3
    assert list(judge("k", {"record": [], "flag": [reasons.RARE_TOKEN]})) == []
