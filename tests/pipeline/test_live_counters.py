"""Live counters (pipeline/live_counters.py) and the progress line (pipeline/progress.py).

The end-to-end test runs align-curate on the FnApiRunner over a small generated corpus (every
drop reason that needs no scorer, reader and decoding errors, a duplicate key) and checks that the
committed Beam counters equal stats.json exactly, and that the process-local tally the progress
line reads holds the same counts.
"""
import io
import os

import pytest
from apache_beam.metrics.execution import MetricKey, MetricResult
from apache_beam.metrics.metricbase import MetricName

from pipeline import curate, live_counters as lc, progress, reasons, records
from tests.pipeline import hostile_corpus
from tests.pipeline import image_factory as f


# --- counter names ------------------------------------------------------------------------------

def test_outcome_counter_names_are_the_stats_json_keys():
    assert lc.outcome_counter("kept", None) == "kept_pairs"
    assert lc.outcome_counter("dropped", reasons.IMAGE_TOO_SMALL) == "dropped.image_too_small"
    assert lc.outcome_counter("error", records.DUPLICATE_KEY) == "errors.duplicate_key"
    with pytest.raises(ValueError):
        lc.outcome_counter("lost", None)
    stats = {"input_pairs": 5, "kept_pairs": 2,
             "dropped": {reason: 0 for reason in reasons.DROP_ORDER},
             "errors": {name: 0 for name in records.ERRORS}}
    stats["dropped"][reasons.RARE_TOKEN] = 2
    stats["errors"][records.MISSING_TEXT] = 1
    assert lc.outcome_counters_from_stats(stats) == {
        "input_pairs": 5, "kept_pairs": 2, "dropped.rare_token": 2, "errors.missing_text": 1}


def _result(name, committed, attempted=None, step="s", namespace=lc.NAMESPACE):
    key = MetricKey(step, MetricName(namespace, name))
    return MetricResult(key, committed, committed if attempted is None else attempted)


def test_counters_from_results_sums_steps_and_ignores_other_namespaces():
    results = [_result("dropped.aspect_ratio", 3, step="ParsePairs"),
               _result("dropped.aspect_ratio", 0, attempted=1, step="JudgeCandidates"),
               _result("kept_pairs", 7, attempted=9),
               _result("kept_pairs", 100, namespace="dedup"),
               _result("input_pairs", None, attempted=4)]
    assert lc.counters_from_results(results) == {"dropped.aspect_ratio": 3, "kept_pairs": 7}
    assert lc.counters_from_results(results, committed=False) == {
        "dropped.aspect_ratio": 4, "kept_pairs": 9, "input_pairs": 4}


def test_outcome_counters_keeps_what_stats_json_holds():
    counters = {"input_pairs": 3, "kept_pairs": 1, "dropped.unsafe": 1, "errors.empty_image": 1,
                "candidates": 2, "read.files": 1, "read.pairs.tsv": 3, "errors.not_an_image": 0}
    assert lc.outcome_counters(counters) == {"input_pairs": 3, "kept_pairs": 1,
                                             "dropped.unsafe": 1, "errors.empty_image": 1}
    assert lc.with_prefix(counters, lc.READ_PAIRS_PREFIX) == {"tsv": 3}


def test_the_local_tally_counts_only_while_started():
    tally = lc.LocalTally()
    tally.add("kept_pairs")
    assert tally.snapshot() == {}
    tally.start()
    tally.add("kept_pairs")
    tally.add("kept_pairs", 2)
    tally.stop()
    tally.add("kept_pairs")
    assert tally.snapshot() == {"kept_pairs": 3}
    tally.start()  # a new run starts from zero
    assert tally.snapshot() == {}


def test_count_outside_a_pipeline_is_harmless():
    lc.count("kept_pairs")  # no running bundle: the Beam counter is a no-op, the tally is off
    lc.count_outcome("dropped", reasons.UNSAFE)


# --- the progress line --------------------------------------------------------------------------

def test_progress_line_format():
    counters = {"read.pairs.webdataset": 12345, "input_pairs": 12000, "kept_pairs": 10020,
                "dropped.image_too_small": 900, "dropped.too_few_words": 700,
                "dropped.aspect_ratio": 400, "dropped.rare_token": 100,
                "errors.not_an_image": 3, "errors.unreadable_file": 2}
    assert progress.progress_line(counters, elapsed_s=10.0) == (
        "curate: 12,345 read · 10,020 kept · 2,100 dropped (top: image_too_small 900, "
        "too_few_words 700, aspect_ratio 400, ...) · 5 errors · 1,234 pairs/s")


def test_progress_line_before_anything_and_without_reader_counters():
    assert progress.progress_line({}, elapsed_s=0.0) == (
        "curate: 0 read · 0 kept · 0 dropped · 0 errors · 0 pairs/s")
    assert progress.progress_line({"input_pairs": 4, "errors.empty_image": 1,
                                   "dropped.unsafe": 2}, elapsed_s=2.0) == (
        "curate: 4 read · 0 kept · 2 dropped (top: unsafe 2) · 1 error · 2 pairs/s")


def test_top_reasons_break_ties_in_drop_order():
    dropped = {reasons.RARE_TOKEN: 5, reasons.IMAGE_TOO_SMALL: 5, reasons.UNSAFE: 9,
               reasons.ASPECT_RATIO: 0}
    assert progress.top_reasons(dropped, top=3) == [
        (reasons.UNSAFE, 9), (reasons.IMAGE_TOO_SMALL, 5), (reasons.RARE_TOKEN, 5)]


class _Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_reporter_tick_writes_one_line_from_the_counters():
    stream, clock = io.StringIO(), _Clock()
    counts = {"input_pairs": 0}
    reporter = progress.ProgressReporter(5, lambda: dict(counts), stream=stream, clock=clock)
    reporter._start_time = clock()  # as start() sets it, without starting the thread
    counts["input_pairs"] = 50
    clock.now += 10
    line = reporter.tick()
    assert line == "curate: 50 read · 0 kept · 0 dropped · 0 errors · 5 pairs/s"
    assert stream.getvalue() == line + "\n"


def test_reporter_never_fails_on_unreadable_counters(caplog):
    def broken():
        raise RuntimeError("metrics API down")
    stream = io.StringIO()
    assert progress.ProgressReporter(5, broken, stream=stream).tick() is None
    assert stream.getvalue() == "" and "could not read the live counters" in caplog.text


def test_reporter_with_interval_zero_starts_no_thread():
    reporter = progress.ProgressReporter(0, dict, stream=io.StringIO())
    assert not reporter.enabled
    with reporter:
        assert reporter._thread is None
    enabled = progress.ProgressReporter(3600, dict, stream=io.StringIO())
    with enabled:
        assert enabled._thread is not None and enabled._thread.daemon
    assert enabled._thread is None  # stopped and joined without waiting for the interval


def test_progress_interval_flag(tmp_path):
    from pipeline.options import parse_args
    base = ["--input", "x", "--input_format", "tsv", "--output_dir", str(tmp_path)]
    assert parse_args(base)[0].progress_interval_s == 10.0
    assert parse_args(base + ["--progress_interval_s", "0"])[0].progress_interval_s == 0.0


# --- end to end: committed counters == stats.json -----------------------------------------------

def _write_drops(root):
    """One more tar with a pair for each local drop reason, three pairs sharing an alt-text
    (alt_text_shared with --max_images_per_alt_text 2) and a second pair keyed g0 (duplicate_key:
    good.tar of the hostile corpus has one)."""
    image, members = hostile_corpus.image, []
    add = lambda key, data, text: members.extend(  # noqa: E731
        [(f"{key}.png", data), (f"{key}.txt", text.encode())])
    add("small", f.rgb(100, 100), "a small drawing of a thing")
    add("wide", f.rgb(900, 250), "a wide drawing of a thing")
    add("few", image(40), "two words")
    add("many", image(41), " ".join(f"word{i}" for i in range(25)))
    for i in range(3):
        add(f"shared{i}", image(50 + i), "the very same shared caption")
    add("g0", image(60), "another drawing with the same key")
    hostile_corpus.write_tar(os.path.join(root, "drops.tar"), members)


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    root = tmp_path_factory.mktemp("in")
    hostile_corpus.write_webdataset(str(root))
    _write_drops(str(root))
    out = str(tmp_path_factory.mktemp("out"))
    stream = io.StringIO()
    stats, result = curate.execute(
        ["--input", os.path.join(str(root), "*.tar"), "--input_format", "webdataset",
         "--output_dir", out, "--max_image_bytes", str(hostile_corpus.MAX_IMAGE_BYTES),
         "--max_images_per_alt_text", "2", "--vocab_size", "200", "--no-write_outcomes",
         "--progress_interval_s", "3600", "--runner=DirectRunner"], progress_stream=stream)
    files = len([name for name in os.listdir(root) if name.endswith(".tar")])
    return stats, result, stream.getvalue(), files


def test_committed_counters_equal_stats_json(curated):
    stats, result, _, _ = curated
    counters = lc.query_counters(result)
    assert lc.outcome_counters(counters) == lc.outcome_counters_from_stats(stats)
    # The corpus reaches every kind of outcome: the comparison is not vacuous.
    assert stats["kept_pairs"] > 0
    assert {r for r, n in stats["dropped"].items() if n} == {
        reasons.IMAGE_TOO_SMALL, reasons.ASPECT_RATIO, reasons.TOO_FEW_WORDS,
        reasons.TOO_MANY_WORDS, reasons.ALT_TEXT_SHARED}
    assert {n for n, c in stats["errors"].items() if c} >= {
        "unreadable_file", "invalid_utf8_text", "missing_text", "caption_too_long",
        records.DUPLICATE_KEY}


def test_stage_counters_add_up(curated):
    stats, result, _, files = curated
    counters = lc.query_counters(result)
    assert counters[lc.READ_FILES] == files
    assert lc.with_prefix(counters, lc.READ_PAIRS_PREFIX) == {"webdataset": stats["input_pairs"]}
    assert counters[lc.READ_UNREADABLE_FILES] == stats["errors"]["unreadable_file"]
    corpus_drops = sum(stats["dropped"][r] for r in reasons.DROP_ORDER[4:])
    assert counters[lc.CANDIDATES] == (stats["kept_pairs"] + corpus_drops
                                       + stats["errors"][records.DUPLICATE_KEY])


def test_the_local_progress_line_reads_the_same_counters(curated):
    stats, result, lines, _ = curated
    assert lc.LOCAL.snapshot() == lc.query_counters(result)  # what the live lines were read from
    assert not lc.LOCAL.enabled  # off once the run is over
    last = lines.splitlines()[-1]
    dropped = sum(stats["dropped"].values())
    errors = sum(stats["errors"].values())
    assert last.startswith(f"curate: {stats['input_pairs']} read · {stats['kept_pairs']} kept · "
                           f"{dropped} dropped (top: ")
    assert f" · {errors} errors · " in last and last.endswith(" pairs/s (done)")


def test_counters_from_worker_processes_equal_stats_json(tmp_path):
    """--direct_running_mode=multi_processing: the DoFns run in worker subprocesses (as on
    Dataflow's workers); their committed counters still equal stats.json, and the only progress
    line is the last one, read from them (the process-local tally cannot see the workers)."""
    root = tmp_path / "in"
    root.mkdir()
    _write_drops(str(root))
    stream = io.StringIO()
    stats, result = curate.execute(
        ["--input", str(root / "*.tar"), "--input_format", "webdataset",
         "--output_dir", str(tmp_path / "out"), "--max_images_per_alt_text", "2",
         "--vocab_size", "100", "--no-write_outcomes", "--progress_interval_s", "3600",
         "--runner=DirectRunner", "--direct_running_mode=multi_processing",
         "--direct_num_workers=2"], progress_stream=stream)
    counters = lc.query_counters(result)
    assert lc.outcome_counters(counters) == lc.outcome_counters_from_stats(stats)
    assert stats["dropped"][reasons.ALT_TEXT_SHARED] == 3 and stats["kept_pairs"] == 1
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"curate: {stats['input_pairs']} read · 1 kept")
