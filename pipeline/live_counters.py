"""Live counters of `align-curate`: the curation funnel as Beam Metrics, updated as pairs flow.

Every counter is in the namespace NAMESPACE ("align.curate") and is incremented where the decision
is made (pipeline/readers.py, pipeline/transforms.py), not computed at the end, so the Dataflow UI
shows the funnel while the job runs. The names follow stats.json's keys, so the live counters and
the final stats agree (tests/pipeline/test_live_counters.py checks that they are equal):

    input_pairs                 stats.json input_pairs (every pair entering ParsePairs)
    kept_pairs                  stats.json kept_pairs (decided in JudgeCandidates)
    dropped.<reason>            stats.json dropped[<reason>] (local reasons in ParsePairs, corpus
                                reasons in JudgeCandidates), reasons of pipeline/reasons.py
    errors.<name>               stats.json errors[<name>] (ParsePairs; duplicate_key in
                                JudgeCandidates), names of pipeline/records.py ERRORS
    candidates                  pairs that passed the local filters and were decoded (per stage)
    read.files                  input files opened by ReadRawPairs
    read.pairs.<format>         pairs read from the files of that format (webdataset/parquet/tsv)
    read.unreadable_files       files that could not be read (or only part-way): unreadable_file

A counter that was never incremented does not exist (a zero in stats.json). Counters of the same
name in several steps (dropped.* in ParsePairs and JudgeCandidates) are summed by
`counters_from_results`.

`LOCAL` is a process-local copy of the same increments, enabled only by the local progress line
(pipeline/progress.py) while a pipeline runs in this process: the FnApiRunner runs the whole
pipeline synchronously inside `pipeline.run()` and reports Beam metrics only when it returns, so
a thread cannot poll them during the run (docs/PIPELINE.md, "Watching a run").
"""
import threading
from typing import Dict, Iterable, Optional

import apache_beam as beam

NAMESPACE = "align.curate"

INPUT_PAIRS = "input_pairs"
KEPT_PAIRS = "kept_pairs"
CANDIDATES = "candidates"
DROPPED_PREFIX = "dropped."
ERRORS_PREFIX = "errors."
READ_FILES = "read.files"
READ_PAIRS_PREFIX = "read.pairs."
READ_UNREADABLE_FILES = "read.unreadable_files"

# Outcome statuses, as in pipeline/stats.py (not imported: readers.py imports this module).
_KEPT, _DROPPED, _ERROR = "kept", "dropped", "error"


def outcome_counter(status: str, reason: Optional[str]) -> str:
    """The counter of one final outcome: kept_pairs, dropped.<reason> or errors.<name>."""
    if status == _KEPT:
        return KEPT_PAIRS
    if status == _DROPPED:
        return DROPPED_PREFIX + reason
    if status == _ERROR:
        return ERRORS_PREFIX + reason
    raise ValueError(f"unknown outcome status {status!r}")


def read_pairs_counter(input_format: str) -> str:
    return READ_PAIRS_PREFIX + input_format


class LocalTally:
    """Thread-safe {counter name: count}, a process-local copy of the Beam counter increments.

    Off by default (count() then costs one attribute test); the local progress line turns it on
    for the duration of a run in this process. Worker processes (Dataflow, the FnApiRunner's
    multi_processing mode) never have it on: there the Beam counters are the only record."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counts: Dict[str, int] = {}
        self.enabled = False

    def start(self) -> None:
        with self._lock:
            self._counts = {}
            self.enabled = True

    def stop(self) -> None:
        self.enabled = False

    def add(self, name: str, n: int = 1) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + n

    def snapshot(self) -> Dict[str, int]:
        with self._lock:
            return dict(self._counts)


LOCAL = LocalTally()

_COUNTERS: Dict[str, object] = {}  # name -> Metrics counter (a stateless handle: safe to share)


def count(name: str, n: int = 1) -> None:
    """Increments the Beam counter `name` of NAMESPACE (a no-op outside a running bundle) and,
    when a local progress line is on, the process-local tally."""
    counter = _COUNTERS.get(name)
    if counter is None:
        counter = _COUNTERS.setdefault(name, beam.metrics.Metrics.counter(NAMESPACE, name))
    counter.inc(n)
    LOCAL.add(name, n)


def count_outcome(status: str, reason: Optional[str]) -> None:
    count(outcome_counter(status, reason))


def counters_from_results(counter_results: Iterable, committed: bool = True) -> Dict[str, int]:
    """MetricResults of counters (`result.metrics().query(MetricsFilter().with_namespace(
    NAMESPACE))["counters"]`) -> {name: value}, summed over the steps that increment the same
    name. `committed=False` reads the attempted values (what a running job has so far)."""
    counts: Dict[str, int] = {}
    for result in counter_results:
        if result.key.metric.namespace != NAMESPACE:
            continue
        value = result.committed if committed else result.attempted
        if value is None:  # a runner without committed (or attempted) values
            continue
        name = result.key.metric.name
        counts[name] = counts.get(name, 0) + int(value)
    return counts


def query_counters(pipeline_result, committed: bool = True) -> Dict[str, int]:
    """{name: value} of every NAMESPACE counter of a PipelineResult."""
    from apache_beam.metrics.metric import MetricsFilter

    query = pipeline_result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))
    return counters_from_results(query["counters"], committed=committed)


def outcome_counters_from_stats(stats: dict) -> Dict[str, int]:
    """stats.json -> the outcome counters it implies ({input_pairs, kept_pairs, dropped.<reason>,
    errors.<name>}, zeros left out as a counter never incremented does not exist)."""
    counts = {INPUT_PAIRS: stats["input_pairs"], KEPT_PAIRS: stats["kept_pairs"]}
    counts.update({DROPPED_PREFIX + reason: n for reason, n in stats["dropped"].items() if n})
    counts.update({ERRORS_PREFIX + name: n for name, n in stats["errors"].items() if n})
    return {name: n for name, n in counts.items() if n}


def outcome_counters(counters: Dict[str, int]) -> Dict[str, int]:
    """The subset of `counters` that stats.json also holds (outcome_counters_from_stats's keys)."""
    return {name: n for name, n in counters.items() if n and (
        name in (INPUT_PAIRS, KEPT_PAIRS) or name.startswith((DROPPED_PREFIX, ERRORS_PREFIX)))}


def with_prefix(counters: Dict[str, int], prefix: str) -> Dict[str, int]:
    """{rest of the name: count} of the counters named prefix + rest."""
    return {name[len(prefix):]: n for name, n in counters.items() if name.startswith(prefix)}
