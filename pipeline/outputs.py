"""`WriteCurationOutputs`: the TFRecords, vocab.txt, stats.json and report.html of one run.

    DIR/tfrecords/train-SSSSS-of-NNNNN.tfrecord  (schemas/example_schema.py)
    DIR/vocab.txt                                (2b's pipeline/vocab.py BuildVocab)
    DIR/stats.json                               (pipeline/stats.py; identity checked, fails loudly)
    DIR/report.html                              (2b's pipeline/report.py render_report)

Stats are assembled from PCollections (small combined values passed as side inputs to a single
element), so they are data, the same on every runner, and written with Beam FileSystems (gs:// ok).
"""
from typing import Optional

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.pvalue import AsDict, AsList, AsSingleton

from pipeline import stats as stats_lib
from pipeline.vocab import BuildVocab


def write_text(path: str, text: str) -> None:
    with FileSystems.create(path, mime_type="text/plain") as handle:
        handle.write(text.encode("utf-8"))


def _build_stats(_, config, dedup_applied, input_pairs, outcome_counts, conversion_counts,
                 unsafe_summary, rare_summary, vocab, histograms):
    return stats_lib.build_stats(
        config=config, input_pairs=input_pairs, outcome_counts=outcome_counts,
        conversion_counts=conversion_counts, unsafe_summary=unsafe_summary,
        rare_summary=rare_summary, vocab=vocab, histograms=histograms,
        dedup_applied=dedup_applied)


def _write_stats_and_report(stats, output_dir, samples, near_duplicates):
    from pipeline.report import render_report
    write_text(FileSystems.join(output_dir, "stats.json"), stats_lib.to_json(stats))
    ordered = {reason: samples[reason] for reason in sorted(samples)}
    write_text(FileSystems.join(output_dir, "report.html"),
               render_report(stats, ordered, near_duplicates))
    return stats


class WriteCurationOutputs(beam.PTransform):
    """The dict returned by CuratePairs -> files under config.output_dir; returns PCollection[stats]."""

    def __init__(self, config, dedup_applied: bool = False,
                 near_duplicates: Optional[list] = None):
        super().__init__()
        self._config = config
        self._dedup_applied = dedup_applied
        self._near_duplicates = near_duplicates

    def expand(self, curated):
        config = self._config
        out = config.output_dir
        curated["examples"] | "WriteTFRecords" >> beam.io.WriteToTFRecord(
            FileSystems.join(out, "tfrecords", "train"), file_name_suffix=".tfrecord",
            num_shards=config.num_shards, shard_name_template="-SSSSS-of-NNNNN")
        vocab = curated["kept_texts"] | "BuildVocab" >> BuildVocab(
            vocab_size=config.vocab_size, output_path=FileSystems.join(out, "vocab.txt"))
        pipeline = curated["input_pairs"].pipeline
        stats = (pipeline
                 | "StatsSeed" >> beam.Create([None])
                 | "BuildStats" >> beam.Map(
                     _build_stats, config, self._dedup_applied,
                     input_pairs=AsSingleton(curated["input_pairs"]),
                     outcome_counts=AsList(curated["outcome_counts"]),
                     conversion_counts=AsList(curated["conversion_counts"]),
                     unsafe_summary=AsSingleton(curated["unsafe_summary"]),
                     rare_summary=AsSingleton(curated["rare_summary"]),
                     vocab=AsSingleton(vocab),
                     histograms=AsDict(curated["histograms"])))
        return stats | "WriteStatsAndReport" >> beam.Map(
            _write_stats_and_report, out, samples=AsDict(curated["samples"]),
            near_duplicates=self._near_duplicates)
