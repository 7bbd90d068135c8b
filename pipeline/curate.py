"""`align-curate` (= `python -m pipeline.curate`): raw image/alt-text pairs -> ALIGN-filtered outputs.

    align-curate --input 'demo_data/webdataset/*.tar' --input_format webdataset \
        --output_dir /tmp/curated [paper thresholds, see --help] [Beam PipelineOptions]

`--runner=DirectRunner` (also the default) runs on Beam's FnApiRunner, the engine the
DirectRunner itself uses for batch pipelines, without first trying the Prism runner (which
downloads a binary at run time). `--direct_running_mode=multi_processing --direct_num_workers=N`
are honoured. Any other runner (DataflowRunner, PrismRunner, FlinkRunner, ...) is used as given.
"""
import json
import logging
import sys
from typing import List, Optional

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipeline.options import CurationConfig, parse_all
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


def run(argv: Optional[List[str]] = None) -> dict:
    config, dedup_config, beam_args = parse_all(argv)
    options = PipelineOptions(beam_args)
    pipeline = make_pipeline(options)
    build(pipeline, config, dedup_config=dedup_config)
    result = pipeline.run()
    result.wait_until_finish()
    stats_path = FileSystems.join(config.output_dir, "stats.json")
    with FileSystems.open(stats_path) as handle:
        return json.loads(handle.read().decode("utf-8"))


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
