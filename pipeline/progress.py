"""The progress line of `align-curate`, printed to stderr every --progress_interval_s seconds:

    curate: 12,345 read · 10,020 kept · 2,100 dropped (top: image_too_small 900, ...) · 5 errors · 1,234 pairs/s

It is formatted (`progress_line`, a plain function) from the live counters of
pipeline/live_counters.py, the same names the Dataflow UI shows. Where the counters come from
(`ProgressReporter`'s `read_counters`) depends on the runner (pipeline/curate.py): locally, the
process-local tally of those increments (the FnApiRunner only reports Beam metrics once the run
is over); on a runner whose `run()` returns while the job runs (Dataflow), the job's own metrics.
"""
import logging
import sys
import threading
import time
from typing import Callable, Dict, Optional, TextIO

from pipeline import live_counters as lc
from pipeline import reasons

TOP_REASONS = 3


def _n(value: int) -> str:
    return f"{value:,}"


def read_count(counters: Dict[str, int]) -> int:
    """Pairs read so far: those the readers produced (read.pairs.*), or, without reader counters
    (CuratePairs fed by something else), those that entered ParsePairs (input_pairs)."""
    read = sum(lc.with_prefix(counters, lc.READ_PAIRS_PREFIX).values())
    return read or counters.get(lc.INPUT_PAIRS, 0)


def top_reasons(dropped: Dict[str, int], top: int = TOP_REASONS):
    """The `top` largest drop reasons, ties in reasons.DROP_ORDER, then by name."""
    order = {reason: rank for rank, reason in enumerate(reasons.DROP_ORDER)}
    ranked = sorted(((n, reason) for reason, n in dropped.items() if n),
                    key=lambda item: (-item[0], order.get(item[1], len(order)), item[1]))
    return [(reason, n) for n, reason in ranked[:top]]


def progress_line(counters: Dict[str, int], elapsed_s: float, top: int = TOP_REASONS) -> str:
    """One progress line from a {counter name: count} snapshot and the seconds since the start."""
    read = read_count(counters)
    dropped = lc.with_prefix(counters, lc.DROPPED_PREFIX)
    errors = sum(lc.with_prefix(counters, lc.ERRORS_PREFIX).values())
    parts = [f"{_n(read)} read", f"{_n(counters.get(lc.KEPT_PAIRS, 0))} kept"]
    dropped_part = f"{_n(sum(dropped.values()))} dropped"
    ranked = top_reasons(dropped, top)
    if ranked:
        more = ", ..." if len([n for n in dropped.values() if n]) > len(ranked) else ""
        dropped_part += " (top: " + ", ".join(f"{r} {_n(n)}" for r, n in ranked) + more + ")"
    parts.append(dropped_part)
    parts.append(f"{_n(errors)} error" + ("" if errors == 1 else "s"))
    rate = read / elapsed_s if elapsed_s > 0 else 0.0
    parts.append(f"{_n(round(rate))} pairs/s")
    return "curate: " + " · ".join(parts)


class ProgressReporter:
    """A daemon thread writing `progress_line(read_counters(), elapsed)` to `stream` every
    `interval_s` seconds, from `start()` to `stop()` (also a context manager). `interval_s` <= 0:
    does nothing. A failing `read_counters` (e.g. a metrics API call) is logged, never raised:
    the progress line never fails a run."""

    def __init__(self, interval_s: float, read_counters: Callable[[], Dict[str, int]],
                 stream: Optional[TextIO] = None, clock: Callable[[], float] = time.monotonic):
        self._interval_s = interval_s
        self._read_counters = read_counters
        self._stream = stream
        self._clock = clock
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._start_time = None

    @property
    def enabled(self) -> bool:
        return self._interval_s is not None and self._interval_s > 0

    def tick(self) -> Optional[str]:
        """Writes one progress line now and returns it (None if the counters could not be read)."""
        try:
            counters = self._read_counters()
        except Exception:  # noqa: BLE001  a metrics query failing must not fail the run
            logging.warning("curate: could not read the live counters", exc_info=True)
            return None
        start = self._start_time if self._start_time is not None else self._clock()
        line = progress_line(counters, self._clock() - start)
        stream = self._stream if self._stream is not None else sys.stderr
        print(line, file=stream, flush=True)
        return line

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.tick()

    def start(self) -> "ProgressReporter":
        self._start_time = self._clock()
        if self.enabled and self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="curate-progress", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> "ProgressReporter":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
