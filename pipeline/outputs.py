"""`WriteCurationOutputs`: the kept pairs, vocab.txt, stats.json and report.html of one run.

    DIR/tfrecords/train-SSSSS-of-NNNNN.tfrecord  (schemas/example_schema.py; --output_format
                                                 tfrecord, the default)
    DIR/webdataset/SSSSS.tar                     (--output_format webdataset: img2dataset layout,
                                                 {stem}.jpg/.txt/.json; pipeline/output_formats.py)
    DIR/parquet/train-SSSSS-of-NNNNN.parquet     (--output_format parquet: metadata + image bytes)
    DIR/kept_pairs/kept-SSSSS-of-NNNNN.parquet   (ALWAYS, whatever the format: key, url, caption,
                                                 sha256, width/height, image size of kept pairs)
    DIR/vocab.txt                                (2b's pipeline/vocab.py BuildVocab)
    DIR/stats.json                               (pipeline/stats.py; identity checked, fails loudly)
    DIR/report.html                              (2b's pipeline/report.py render_report)
    DIR/near_duplicates.jsonl                    (only with --eval_images: dedup/, appendix A)
    DIR/eval_unreadable.jsonl                    (only with --eval_images: eval images not compared)
    DIR/outcomes/outcomes-SSSSS-of-NNNNN.jsonl   (every input pair: key, status, reason; unless
                                                 --no-write_outcomes)

Stats are assembled from PCollections (small combined values passed as side inputs to a single
element), so they are data, the same on every runner, and written with Beam FileSystems (gs:// ok).
"""
import json

import apache_beam as beam
from apache_beam.transforms import combiners
from apache_beam.io.filesystems import FileSystems
from apache_beam.pvalue import AsDict, AsList, AsSingleton

from pipeline import output_formats
from pipeline import stats as stats_lib
from pipeline.vocab import BuildVocab


def write_text(path: str, text: str) -> None:
    with FileSystems.create(path, mime_type="text/plain") as handle:
        handle.write(text.encode("utf-8"))


def near_duplicate_line(key, match) -> str:
    """One line of near_duplicates.jsonl: every training pair dropped as a near-duplicate."""
    return json.dumps({"key": key, "eval_key": match["eval_key"],
                       "cosine": round(float(match["cosine"]), 6), "method": match.get("method")})


def outcome_line(outcome) -> str:
    """One line of outcomes/*.jsonl: {"key", "status" (kept/dropped/error), "reason" (or null),
    "file" (the input file of the pair), and for errors with one, "detail" (what was wrong, where)}.
    ASCII-escaped JSON: a key holding U+2028, U+0085 or other line separators cannot split the
    line for readers that use str.splitlines()."""
    key, status, reason, file, detail = outcome
    line = {"key": key, "status": status, "reason": reason, "file": file}
    if detail:
        line["detail"] = detail
    return json.dumps(line, ensure_ascii=True)


def _build_stats(_, config, dedup_applied, input_pairs, outcome_counts, conversion_counts,
                 unsafe_summary, rare_summary, vocab, histograms, eval_error_counts=None,
                 example_files=(), kept_pairs_files=()):
    stats = stats_lib.build_stats(
        config=config, input_pairs=input_pairs, outcome_counts=outcome_counts,
        conversion_counts=conversion_counts, unsafe_summary=unsafe_summary,
        rare_summary=rare_summary, vocab=vocab, histograms=histograms,
        dedup_applied=dedup_applied, eval_error_counts=eval_error_counts)
    # Written after the kept pairs' files are final (their paths are side inputs here).
    stats["outputs"] = output_formats.outputs_section(
        config.output_format, config.output_dir, example_files, kept_pairs_files)
    return stats


def _write_stats_and_report(stats, output_dir, samples, near_duplicates=None):
    from pipeline.report import render_report
    write_text(FileSystems.join(output_dir, "stats.json"), stats_lib.to_json(stats))
    ordered = {reason: samples[reason] for reason in sorted(samples)}
    if near_duplicates is not None:  # AsList of one list
        near_duplicates = sorted(near_duplicates[0] if near_duplicates else [],
                                 key=lambda d: -d["cosine"])
    write_text(FileSystems.join(output_dir, "report.html"),
               render_report(stats, ordered, near_duplicates))
    return stats


class WriteCurationOutputs(beam.PTransform):
    """The dict returned by CuratePairs -> files under config.output_dir; returns PCollection[stats]."""

    def __init__(self, config, dedup_applied: bool = False):
        super().__init__()
        self._config = config
        self._dedup_applied = dedup_applied

    def expand(self, curated):
        config = self._config
        out = config.output_dir
        written = curated["examples"] | "WriteKeptPairs" >> output_formats.WriteKeptPairs(
            out, config.output_format, config.num_shards)
        extra = {"example_files": AsList(written["examples"]),
                 "kept_pairs_files": AsList(written["kept_pairs"])}
        if config.write_outcomes:
            (curated["outcomes"]
             | "OutcomeLines" >> beam.Map(outcome_line)
             | "WriteOutcomes" >> beam.io.WriteToText(
                 FileSystems.join(out, "outcomes", "outcomes"), file_name_suffix=".jsonl",
                 num_shards=config.num_shards, shard_name_template="-SSSSS-of-NNNNN"))
        vocab = curated["kept_texts"] | "BuildVocab" >> BuildVocab(
            vocab_size=config.vocab_size, output_path=FileSystems.join(out, "vocab.txt"),
            min_piece_count=config.vocab_min_piece_count)
        pipeline = curated["input_pairs"].pipeline
        if "eval_errors" in curated:  # eval images the near-duplicate search could not compare
            extra["eval_error_counts"] = AsList(
                curated["eval_errors"] | "EvalErrorName" >> beam.Map(lambda e: e["error"])
                | "CountEvalErrors" >> combiners.Count.PerElement())
            (curated["eval_errors"]
             | "EvalErrorLines" >> beam.Map(lambda e: json.dumps(e, ensure_ascii=True))
             | "WriteEvalErrors" >> beam.io.WriteToText(
                 FileSystems.join(out, "eval_unreadable"), file_name_suffix=".jsonl",
                 num_shards=1, shard_name_template=""))
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
                     histograms=AsDict(curated["histograms"]), **extra))
        side = {"samples": AsDict(curated["samples"])}
        if "near_duplicates" in curated:
            side["near_duplicates"] = AsList(curated["near_duplicates"])
            (curated["near_duplicate_matches"]
             | "NearDuplicateJsonl" >> beam.MapTuple(near_duplicate_line)
             | "WriteNearDuplicates" >> beam.io.WriteToText(
                 FileSystems.join(out, "near_duplicates"), file_name_suffix=".jsonl",
                 num_shards=1, shard_name_template=""))
        return stats | "WriteStatsAndReport" >> beam.Map(_write_stats_and_report, out, **side)
