"""`align-curate` (= `python -m pipeline.curate`): raw image/alt-text pairs -> ALIGN-filtered outputs.

    align-curate --input 'demo_data/webdataset/*.tar' --input_format webdataset \
        --output_dir /tmp/curated [paper thresholds, see --help] [Beam PipelineOptions]

`--runner=DirectRunner` (also the default) runs on Beam's FnApiRunner, the engine the
DirectRunner itself uses for batch pipelines, without first trying the Prism runner (which
downloads a binary at run time). `--direct_running_mode=multi_processing --direct_num_workers=N`
are honoured. Any other runner (DataflowRunner, PrismRunner, FlinkRunner, ...) is used as given.

While it runs, a progress line goes to stderr every --progress_interval_s seconds (0: none), read
from the live counters of pipeline/live_counters.py (`run_with_progress`, docs/PIPELINE.md).
"""
import json
import logging
import sys
import time
from typing import List, Optional, TextIO

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions
from apache_beam.runners.runner import PipelineState

from pipeline import live_counters
from pipeline.options import CurationConfig, parse_all
from pipeline.progress import ProgressReporter, progress_line
from pipeline.outputs import WriteCurationOutputs
from pipeline.readers import ReadRawPairs
from pipeline.transforms import CuratePairs

_DIRECT_RUNNER_NAMES = (None, "DirectRunner", "direct", "directrunner")


def make_pipeline(options: PipelineOptions) -> beam.Pipeline:
    runner = options.view_as(StandardOptions).runner
    if runner in _DIRECT_RUNNER_NAMES:
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner
        return beam.Pipeline(runner=FnApiRunner(), options=options)
    return beam.Pipeline(options=options)


def build(pipeline: beam.Pipeline, config: CurationConfig,
          extra_flags: Optional[beam.PCollection] = None, dedup_config=None):
    """Adds the whole curation to `pipeline`; returns the PCollection of the one stats dict.

    `extra_flags`: optional PCollection[(key, reason)] joined like every filter's flags.
    `dedup_config` (dedup.config.DedupConfig): with eval images, the near-duplicate search of
    dedup/ (appendix A) runs on the re-encoded candidate images and flags near_duplicate_of_eval.
    """
    finder = None
    if dedup_config is not None and dedup_config.enabled:
        from dedup.beam_stage import FindNearDuplicatesOfEval
        finder = FindNearDuplicatesOfEval(dedup_config.eval_image_globs, dedup_config)
    raw = pipeline | "ReadRawPairs" >> ReadRawPairs(
        config.input, config.input_format, text_column=config.text_column,
        image_column=config.image_column, score_field=config.unsafe_score_field,
        max_image_bytes=config.max_image_bytes, image_read_timeout_s=config.image_read_timeout_s)
    curated = raw | "CuratePairs" >> CuratePairs(config, extra_flags=extra_flags,
                                                 near_duplicate_finder=finder)
    return curated | "WriteCurationOutputs" >> WriteCurationOutputs(
        config, dedup_applied=extra_flags is not None or finder is not None)


def counts_in_this_process(options: PipelineOptions) -> bool:
    """Whether the DoFns run in this process (our FnApiRunner, in_memory or multi_threading), so
    the process-local tally of the live counters sees every increment while the pipeline runs."""
    runner = options.view_as(StandardOptions).runner
    mode = options.view_as(DirectOptions).direct_running_mode
    return runner in _DIRECT_RUNNER_NAMES and mode != "multi_processing"


def run_with_progress(pipeline: beam.Pipeline, interval_s: float,
                      stream: Optional[TextIO] = None):
    """pipeline.run() until done, with a progress line every `interval_s` seconds (<= 0: none)
    and a last one from the committed counters; returns the PipelineResult.

    The FnApiRunner runs the whole pipeline inside run() and reports Beam metrics only once it
    returns, so locally the lines read the process-local tally of the same increments
    (live_counters.LOCAL). A runner whose run() returns while the job runs (Dataflow) is polled
    through result.metrics() (attempted values). With --direct_running_mode=multi_processing the
    counts live in the worker processes until the end: only the last line is printed."""
    stream = stream if stream is not None else sys.stderr
    enabled = interval_s is not None and interval_s > 0
    start = time.monotonic()
    local = enabled and counts_in_this_process(pipeline.options)
    if local:
        live_counters.LOCAL.start()
        try:
            with ProgressReporter(interval_s, live_counters.LOCAL.snapshot, stream):
                result = pipeline.run()
                result.wait_until_finish()
        finally:
            live_counters.LOCAL.stop()
    else:
        result = pipeline.run()
        if enabled and not PipelineState.is_terminal(result.state):
            with ProgressReporter(interval_s, lambda: live_counters.query_counters(
                    result, committed=False), stream):
                result.wait_until_finish()
        else:
            result.wait_until_finish()
    if enabled:
        try:
            final = live_counters.query_counters(result)
        except Exception:  # noqa: BLE001  a runner without metrics: the summary line still comes
            logging.warning("curate: could not read the final counters", exc_info=True)
        else:
            print(progress_line(final, time.monotonic() - start) + " (done)", file=stream,
                  flush=True)
    return result


def execute(argv: Optional[List[str]] = None, progress_stream: Optional[TextIO] = None):
    """(stats.json as a dict, the PipelineResult) of one run of align-curate with `argv`."""
    config, dedup_config, beam_args = parse_all(argv)
    options = PipelineOptions(beam_args)
    pipeline = make_pipeline(options)
    build(pipeline, config, dedup_config=dedup_config)
    result = run_with_progress(pipeline, config.progress_interval_s, progress_stream)
    stats_path = FileSystems.join(config.output_dir, "stats.json")
    with FileSystems.open(stats_path) as handle:
        return json.loads(handle.read().decode("utf-8")), result


def run(argv: Optional[List[str]] = None) -> dict:
    return execute(argv)[0]


def vocab_shortfall(vocab: dict) -> str:
    """Appended to the summary line when the vocabulary is smaller than requested: why."""
    limited_by = vocab.get("limited_by")
    if limited_by in (None, "requested"):
        return ""
    return (f" (of {vocab.get('requested')} requested; limited by {limited_by}: "
            f"{vocab.get('limited_by_explanation')})")


def main(argv: Optional[List[str]] = None) -> int:
    logging.getLogger().setLevel(logging.WARNING)
    stats = run(argv if argv is not None else sys.argv[1:])
    dropped = sum(stats["dropped"].values())
    errors = sum(stats["errors"].values())
    vocab = stats["vocab"]
    print(f"input {stats['input_pairs']} pairs -> kept {stats['kept_pairs']}, dropped {dropped}, "
          f"errors {errors}; vocab {vocab.get('achieved')} entries{vocab_shortfall(vocab)}")
    if not stats["filters"]["unsafe"]["applied"]:
        print("unsafe filter: " + stats["filters"]["unsafe"]["note"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
