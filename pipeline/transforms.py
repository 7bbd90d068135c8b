"""`CuratePairs`: raw pairs -> one outcome per pair (kept, or one drop reason, or one error).

    raw pairs --ParsePairs--> errors | dropped locally (header size, own word count; paper 3; no
        pixels decoded) | candidates (the rest, decoded and re-encoded)
    readable (light copies of locally dropped + candidates, no image bytes) --> corpus counts
    (2b's pipeline/corpus_filters.py):
        FlagImagesWithManyAltTexts, FlagSharedAltTexts, FlagRareTokens  -> (key, reason) flags
    candidates --ScoreUnsafe--> (key, "unsafe") flags (pluggable scorer, pipeline/unsafe.py)
    extra_flags (optional, e.g. near_duplicate_of_eval from dedup/) -> (key, reason) flags
    candidates + all flags --CoGroupByKey by pair key--> reasons.first_reason -> kept | dropped

Flags are joined by key (no side input grows with the data), but each flag names the *pair* it
belongs to: every pair carries an identity `ident` = "{key}\0{uid}", uid a 64-bit hash of its
file and position there (schemas/input_readers.py), and the corpus filters, the unsafe scorer
and the near-duplicate search flag idents. So when two pairs share a key, one pair's flag never
drops the other: each candidate is judged on its own flags (plus `extra_flags`, which are given
per key), and only then is every candidate but the first (by image SHA-256, then identity) a
`duplicate_key` error. Only candidates enter the join: locally dropped pairs already have their
final reason (local reasons come first in DROP_ORDER).

Live counters (pipeline/live_counters.py, the Dataflow UI's view of the funnel during a run):
ParsePairs counts input_pairs, errors.<name>, dropped.<local reason> and candidates as it decides
them; JudgeCandidates counts kept_pairs, dropped.<corpus reason> and errors.duplicate_key.
"""
import hashlib
import logging
from typing import Optional, Tuple

import apache_beam as beam
from apache_beam.transforms import combiners

from pipeline import corpus_filters, live_counters, reasons, records, stats
from pipeline.histograms import HistogramCombineFn
from pipeline.image_filters import aspect_ratio
from pipeline.unsafe import ScoreUnsafe

_SAMPLE_FIELDS = ("key", "url", "text", "raw_text")


def pair_ident(raw: dict) -> str:
    """The identity of one input pair: its key, NUL, a hash of (file, position in the file)."""
    where = f"{raw.get('file', '')}\0{raw.get('ordinal', 0)}".encode("utf-8", "surrogatepass")
    return f"{raw['key']}\0{hashlib.blake2b(where, digest_size=8).hexdigest()}"


def key_of(ident: str) -> str:
    return ident.rsplit("\0", 1)[0]


def flag_by_key(ident_reason):
    """(ident, reason) -> (key, (ident, reason)): joined by key, applied to that pair only."""
    ident, reason = ident_reason
    return key_of(ident), (ident, reason)


def judge(key, grouped):
    """(key, {"record": [...], "flag": [(ident or None, reason)]}) -> the judged candidate(s) of
    that key: the first by (image SHA-256, ident) on its own flags (a None ident: every pair of
    the key), the others duplicate_key errors."""
    candidates = sorted(grouped["record"], key=lambda r: (r["image_sha256"], r["ident"]))
    if not candidates:
        return  # flags of pairs that did not reach the join (errors, header-dropped)
    first = candidates[0]
    reason = reasons.first_reason({reason for ident, reason in grouped["flag"]
                                   if ident is None or ident == first["ident"]})
    yield dict(first, status=stats.KEPT if reason is None else stats.DROPPED, reason=reason)
    for duplicate in candidates[1:]:
        yield dict(duplicate, status=stats.ERROR, reason=records.DUPLICATE_KEY)


def _judge_and_count(key, grouped):
    """judge(), each final outcome counted as it is decided (pipeline/live_counters.py)."""
    for record in judge(key, grouped):
        live_counters.count_outcome(record["status"], record["reason"])
        yield record


def to_example(record: dict) -> bytes:
    from schemas.example_wire import serialize_example  # no TensorFlow import in the workers
    return serialize_example(
        image_jpeg=record["jpeg"], height=record["jpeg_height"], width=record["jpeg_width"],
        text=record["text"], raw_text=record["raw_text"], key=record["key"], url=record["url"],
        original_height=record["original_height"], original_width=record["original_width"],
        image_sha256=record["image_sha256"])


def sample_source(record: dict) -> tuple:
    """(reason, small dict) of a dropped or failed pair, for the report's per-reason samples."""
    sample = {name: record.get(name, "") for name in _SAMPLE_FIELDS}
    sample["image"] = record.get("jpeg") or record.get("image")
    if "width" in record:
        sample["detail"] = (f"{record['width']}x{record['height']} px, "
                            f"{record.get('words', 0)} unigrams")
    else:
        where = record.get("detail") or record.get("file")
        sample["detail"] = f"error: {record['reason']}" + (f" ({where})" if where else "")
    if record["status"] == stats.ERROR:
        sample["image"] = None  # never decode what failed to decode (bombs, garbage)
    return record["reason"], sample


def with_thumbnails(reason_and_samples):
    from pipeline.report import make_thumbnail
    reason, samples = reason_and_samples
    out = []
    for sample in sorted(samples, key=lambda s: s["key"]):
        image = sample.pop("image", None)
        sample["thumbnail"] = make_thumbnail(image) if image else None
        out.append(sample)
    return reason, out


def _eval_thumbnail(eval_key):
    """Thumbnail of the evaluation image, re-read from its source (only for the few sampled
    near-duplicates; eval bytes are not carried through the pipeline). None if unreadable."""
    from dedup.eval_inputs import load_eval_image
    from pipeline.report import make_thumbnail
    try:
        return make_thumbnail(load_eval_image(eval_key))
    except Exception:  # an audit thumbnail never fails the run; the report shows "no image"
        logging.warning("no thumbnail for eval image %r", eval_key, exc_info=True)
        return None


def _near_duplicate_entry(key, grouped):
    """Report entry of one training pair dropped as a near-duplicate (pairs that matched but were
    dropped for an earlier reason carry no stored JPEG and are left to near_duplicates.jsonl)."""
    matches, jpegs = list(grouped["match"]), list(grouped["jpeg"])
    if not jpegs:
        return
    for match in matches[:1]:
        yield {"train_key": key_of(key), "eval_key": match["eval_key"], "cosine": match["cosine"],
               "method": match.get("method", ""), "jpeg": jpegs[0]}


def _with_thumbnails(entry):
    from pipeline.report import make_thumbnail
    entry = dict(entry)
    entry["train_thumbnail"] = make_thumbnail(entry.pop("jpeg"))
    entry["eval_thumbnail"] = _eval_thumbnail(entry["eval_key"])
    return entry


def _near_duplicate_samples(matches, judged, sample_size):
    """PCollection[one list]: up to `sample_size` pairs dropped as near-duplicates, for the report,
    side by side (training thumbnail from the stored JPEG, evaluation thumbnail re-read from its
    source only for the sampled few)."""
    jpegs = (judged
             | "NearDuplicateDrops" >> beam.Filter(
                 lambda r: r["reason"] == reasons.NEAR_DUPLICATE_OF_EVAL)
             | "NearDuplicateJpeg" >> beam.Map(lambda r: (r["ident"], r["jpeg"])))
    return ({"match": matches, "jpeg": jpegs}
            | "JoinNearDuplicateJpegs" >> beam.CoGroupByKey()
            | "NearDuplicateEntry" >> beam.FlatMapTuple(_near_duplicate_entry)
            | "SampleNearDuplicates" >> combiners.Sample.FixedSizeGlobally(sample_size)
            | "NearDuplicateList" >> beam.FlatMap(lambda items: items)
            | "NearDuplicateThumbnails" >> beam.Map(_with_thumbnails)
            | "NearDuplicatesAsList" >> combiners.ToList())


_READABLE = "readable"  # light copy of every readable pair, for the corpus counts and histograms
_READABLE_FIELDS = ("ident", "image_sha256", "text", "width", "height", "words")


def _count_parsed(record) -> None:
    """Live counters of one parsed pair: input_pairs, and its final outcome if parsing decided it
    (an error, a local drop), else candidates (pipeline/live_counters.py)."""
    live_counters.count(live_counters.INPUT_PAIRS)
    if record["status"] == records.ERROR:
        live_counters.count_outcome(stats.ERROR, record["reason"])
    elif record["status"] == records.DROPPED_LOCALLY:
        live_counters.count_outcome(stats.DROPPED, record["reason"])
    else:
        live_counters.count(live_counters.CANDIDATES)


def _parse(raw, config):
    record = records.parse_pair(raw, config)
    _count_parsed(record)
    record["ident"], record["file"] = pair_ident(raw), raw.get("file", "")
    if raw.get("detail"):
        record["detail"] = raw["detail"]
    yield beam.pvalue.TaggedOutput(record["status"], record)
    if record["status"] != records.ERROR:  # without the image bytes: they need not travel there
        yield beam.pvalue.TaggedOutput(_READABLE, {name: record[name] for name in _READABLE_FIELDS})


class CuratePairs(beam.PTransform):
    """PCollection[raw pair dict] (pipeline/readers.py) -> dict of PCollections:

    "examples": serialized tf.train.Example of every kept pair (schemas/example_schema.py);
    "kept_texts": normalized alt-text of every kept pair (for the vocabulary);
    "outcomes": (key, status, reason, file, detail) for EVERY input pair, status in kept/dropped/error;
    "input_pairs": one int; "outcome_counts": ((status, reason), count);
    "conversion_counts": (conversion, count) over kept pairs; "histograms": (name, histogram);
    "unsafe_summary", "rare_summary": one dict each; "samples": (reason, [sample dicts]).
    `extra_flags`: optional PCollection[(key, reason)] joined like every other flag, applied to
    every pair of that key. "near_duplicate_matches" (with a finder): (key, match); "eval_errors": one dict per eval image
    or file that could not be read ({"eval_key", "file", "error", "detail"}, dedup/beam_stage.py).
    """

    def __init__(self, config, extra_flags: Optional[beam.PCollection] = None,
                 near_duplicate_finder: Optional[beam.PTransform] = None):
        super().__init__()
        self._config = config
        self._extra_flags = extra_flags
        self._finder = near_duplicate_finder

    def expand(self, raw_pairs):
        config = self._config
        parsed = raw_pairs | "ParsePairs" >> beam.FlatMap(_parse, config).with_outputs(
            records.ERROR, records.DROPPED_LOCALLY, records.CANDIDATE, _READABLE)
        candidates = parsed[records.CANDIDATE]
        dropped_locally = parsed[records.DROPPED_LOCALLY] | "MarkDroppedLocally" >> beam.Map(
            lambda r: dict(r, status=stats.DROPPED))
        readable = parsed[_READABLE]  # locally dropped + candidates, light records
        many = (readable | "KeyToSha" >> beam.Map(lambda r: (r["ident"], r["image_sha256"]))
                | "FlagImagesWithManyAltTexts" >> corpus_filters.FlagImagesWithManyAltTexts(
                    config.max_alt_texts_per_image))
        shared = (readable
                  | "KeyShaText" >> beam.Map(lambda r: (r["ident"], r["image_sha256"], r["text"]))
                  | "FlagSharedAltTexts" >> corpus_filters.FlagSharedAltTexts(
                      config.max_images_per_alt_text))
        rare = (readable | "KeyToText" >> beam.Map(lambda r: (r["ident"], r["text"]))
                | "FlagRareTokens" >> corpus_filters.FlagRareTokens(config.top_n_tokens))
        unsafe = candidates | "ScoreUnsafe" >> ScoreUnsafe(config)
        pair_flags = [many["flags"], shared["flags"], rare["flags"], unsafe["flags"]]
        matches = None
        if self._finder is not None:  # dedup/ (appendix A) on the re-encoded candidate images
            matches = (candidates | "IdentToJpeg" >> beam.Map(lambda r: (r["ident"], r["jpeg"]))
                       | "FindNearDuplicatesOfEval" >> self._finder)
            pair_flags.append(matches | "ToNearDuplicateFlag" >> beam.Map(
                lambda kv: (kv[0], reasons.NEAR_DUPLICATE_OF_EVAL)))
        flag_sets = [pair_flags | "FlattenPairFlags" >> beam.Flatten()
                     | "FlagsByKey" >> beam.Map(flag_by_key)]
        if self._extra_flags is not None:
            flag_sets.append(self._extra_flags | "ExtraFlagsByKey" >> beam.MapTuple(
                lambda key, reason: (key, (None, reason))))
        flags = flag_sets | "FlattenFlags" >> beam.Flatten()

        judged = ({"record": candidates | "KeyCandidates" >> beam.Map(lambda r: (r["key"], r)),
                   "flag": flags}
                  | "JoinFlagsByKey" >> beam.CoGroupByKey()
                  | "JudgeCandidates" >> beam.FlatMapTuple(_judge_and_count))
        kept = judged | "KeepKept" >> beam.Filter(lambda r: r["status"] == stats.KEPT)
        every = ((parsed[records.ERROR], dropped_locally, judged)
                 | "FlattenOutcomes" >> beam.Flatten())
        outcomes = every | "ToOutcome" >> beam.Map(lambda r: (
            r["key"], r["status"], r["reason"], r.get("file", ""), r.get("detail", "")))

        result = {
            "examples": kept | "ToExample" >> beam.Map(to_example),
            "kept_texts": kept | "KeptText" >> beam.Map(lambda r: r["text"]),
            "outcomes": outcomes,
            "input_pairs": raw_pairs | "CountInputPairs" >> beam.combiners.Count.Globally(),
            "outcome_counts": (outcomes | "StatusReason" >> beam.Map(lambda o: (o[1], o[2]))
                               | "CountOutcomes" >> combiners.Count.PerElement()),
            "conversion_counts": (kept | "Conversions" >> beam.FlatMap(lambda r: r["conversions"])
                                  | "CountConversions" >> combiners.Count.PerElement()),
            "histograms": self._histograms(readable, many["histogram"], shared["histogram"]),
            "unsafe_summary": unsafe["summary"],
            "rare_summary": rare["summary"],
            "samples": (every
                        | "NotKept" >> beam.Filter(lambda r: r["status"] != stats.KEPT)
                        | "SampleSource" >> beam.Map(sample_source).with_output_types(
                            Tuple[str, dict])
                        | "SamplePerReason" >> combiners.Sample.FixedSizePerKey(
                            config.report_samples_per_reason)
                        | "Thumbnails" >> beam.Map(with_thumbnails)),
        }
        if matches is not None:
            result["eval_errors"] = self._finder.eval_errors  # eval images not compared
            result["near_duplicate_matches"] = matches | "MatchesByKey" >> beam.MapTuple(
                lambda ident, match: (key_of(ident), match))
            result["near_duplicates"] = _near_duplicate_samples(
                matches, judged, config.report_samples_per_reason)
        return result

    @staticmethod
    def _histograms(readable, alt_texts_per_image, images_per_alt_text):
        """The per-pair histograms in one pass: one tuple per pair, one combine of three
        HistogramCombineFns (fewer per-element steps than three Map+Combine branches)."""
        names = ("shorter_side_px", "aspect_ratio", "words_per_text")
        combine = combiners.TupleCombineFn(
            HistogramCombineFn(stats.SHORTER_SIDE_EDGES_PX),
            HistogramCombineFn(stats.ASPECT_RATIO_EDGES),
            HistogramCombineFn(stats.WORDS_PER_TEXT_EDGES))
        per_pair = (readable
                    | "HistogramValues" >> beam.Map(lambda r: (
                        min(r["width"], r["height"]), aspect_ratio(r["width"], r["height"]),
                        r["words"]))
                    | "PairHistograms" >> beam.CombineGlobally(combine)
                    | "NamePairHistograms" >> beam.FlatMap(lambda hs: list(zip(names, hs))))
        return ([per_pair,
                 alt_texts_per_image | "NameAltTextsPerImage" >> beam.Map(
                     lambda h: ("alt_texts_per_image", h)),
                 images_per_alt_text | "NameImagesPerAltText" >> beam.Map(
                     lambda h: ("images_per_alt_text", h))]
                | "FlattenHistograms" >> beam.Flatten())
