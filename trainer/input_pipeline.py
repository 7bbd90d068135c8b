"""tf.data input of the trainer: curated TFRecords (schemas/) to batches of images and token ids.

Paper 4.1: images resized to 346x346, randomly cropped to 289x289 and randomly flipped for
training (central crop for evaluation); alt-texts tokenized with the WordPiece vocab, [CLS] first,
at most 64 tokens. Sizes come from the config (`resize_px`, `crop_px`, `max_tokens`).

Built per input pipeline for `strategy.distribute_datasets_from_function`: each host reads its own
subset of the shards, batches at the static per-replica size (drop_remainder) and the strategy
places one batch on each of its replicas. A batch is
    {"image": float32 [B, crop_px, crop_px, 3] in [0, 255],
     "token_ids": int32 [B, max_tokens], "padding_mask": bool [B, max_tokens]}.

Bad input (a corrupt TFRecord, a record that is not an Example, an image that does not decode) is
named by file and byte offset, which every record carries from the reader on:
- corrupt data: each file has its own TFRecordDataset behind ignore_errors(). TensorFlow's reader
  gives up on a file at its first bad record (past a bad checksum the length framing cannot be
  trusted), so that file's records stop before its size (tf.io.gfile.stat when the pipeline is
  built): records ending at offset N < size mean a corrupt or truncated record at N (TensorFlow's
  own message names its payload, 12 bytes further). The rest of that file is not read.
- parse and decode run per record as a "try": Dataset.from_tensors(record).map(decode)
  .ignore_errors(), then marker elements, take(1) (a marker is made only when the decode failed;
  the first marker re-parses to tell an undecodable image from a malformed Example). The random
  crop and flip run after it, in a plain map. Cost: ~0.1 ms of CPU per record (parallel).
By default a bad record fails the input with a tf.debugging.Assert whose message names the file
and offset, re-raised as BadInputError by `naming_bad_input` (the training loop runs inside it).
With `skip_corrupt_records` (align-train --skip_corrupt_records) bad records are dropped and
recorded in a SkippedInput: per input pipeline, hash tables on its device keyed by file@offset,
so a record is counted once however often it is met again (epochs) or read ahead (shuffle
buffer). Counts are per process (a multi-worker chief reports its own pipelines). A read error
that is not corruption (a file deleted mid-run) looks like, and is handled as, a corrupt file.
"""
import contextlib
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Tuple

import tensorflow as tf
import tensorflow_text as tf_text

from schemas import example_schema
from trainer.config import ImageTowerConfig, TrainConfig

AUTOTUNE = tf.data.AUTOTUNE
PAD, UNK, CLS, SEP = "[PAD]", "[UNK]", "[CLS]", "[SEP]"
_READ_BUFFER_BYTES = 8 << 20  # per-shard read-ahead; large sequential reads suit GCS
RECORD, END, CORRUPT, MALFORMED, UNDECODABLE = 0, 1, 2, 3, 4  # "kind" of a located record
_FRAMING_BYTES = 16  # TFRecord: uint64 length, uint32 CRC of it, the data, uint32 CRC of the data
_WHAT = ["", "", "corrupt or truncated TFRecord data in ",
         "a record that is not a tf.train.Example of the schema in ",
         "a record whose image/encoded does not decode in "]
_BAD_INPUT = "bad input: "  # starts the assertion messages that naming_bad_input recognises
_MAX_NAMED = 100  # bad records named one by one in warnings; past that, only counted


def read_vocab(vocab_path: str) -> List[str]:
    """The tokens of vocab.txt, one per line, in id order (local path or gs://)."""
    with tf.io.gfile.GFile(vocab_path, "r") as f:
        return [line.rstrip("\n") for line in f]


class TextTokenizer(tf.Module):
    """Raw strings -> ([CLS] pieces... [SEP], padded with [PAD]) ids and mask; exportable.

    Uses tensorflow_text.BertTokenizer (BERT basic tokenization, lower-cased with accents
    stripped, then WordPiece). The vocab file becomes an asset of any SavedModel that tracks this
    module, so exported models need no file next to them.
    """

    def __init__(self, vocab_path: str, max_tokens: int):
        super().__init__(name="text_tokenizer")
        tokens = read_vocab(vocab_path)
        for required in (CLS, SEP, UNK):
            if required not in tokens:
                raise ValueError(f"{vocab_path}: vocab has no {required} token")
        if max_tokens < 3:
            raise ValueError("max_tokens must leave room for [CLS], one piece and [SEP]")
        self.vocab_size = len(tokens)
        self.max_tokens = max_tokens
        self.cls_id = tokens.index(CLS)
        self.sep_id = tokens.index(SEP)
        self.pad_id = tokens.index(PAD) if PAD in tokens else 0
        self._vocab_asset = tf.saved_model.Asset(vocab_path)  # copied into exported SavedModels
        table = tf.lookup.StaticVocabularyTable(
            tf.lookup.TextFileInitializer(
                self._vocab_asset, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
                tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER),
            num_oov_buckets=1)  # as BertTokenizer builds it from a path
        self._tokenizer = tf_text.BertTokenizer(
            table, lower_case=True, unknown_token=UNK, token_out_type=tf.int64)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, texts: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        # [batch, words, pieces] -> [batch, pieces], then room for [CLS] and [SEP].
        pieces = self._tokenizer.tokenize(texts).merge_dims(-2, -1)
        pieces = pieces[:, : self.max_tokens - 2]
        batch = tf.shape(texts, out_type=tf.int64)[:1]
        cls = tf.fill(tf.concat([batch, [1]], 0), tf.constant(self.cls_id, tf.int64))
        sep = tf.fill(tf.concat([batch, [1]], 0), tf.constant(self.sep_id, tf.int64))
        ids = tf.concat([cls, pieces, sep], axis=1)
        token_ids, mask = tf_text.pad_model_inputs(ids, self.max_tokens, pad_value=self.pad_id)
        token_ids = tf.ensure_shape(tf.cast(token_ids, tf.int32), [None, self.max_tokens])
        mask = tf.ensure_shape(tf.cast(mask, tf.bool), [None, self.max_tokens])
        return token_ids, mask


def make_text_tokenizer(vocab_path: str, max_tokens: int) -> TextTokenizer:
    return TextTokenizer(vocab_path, max_tokens)


def _image_cfg(cfg) -> ImageTowerConfig:
    return cfg.model.image if isinstance(cfg, TrainConfig) else cfg


def preprocess_image_bytes(encoded: tf.Tensor, cfg, training: bool) -> tf.Tensor:
    """Encoded JPEG/PNG bytes (scalar) -> float32 [crop_px, crop_px, 3] in [0, 255].

    Paper 4.1: resize to resize_px x resize_px (aspect ratio not kept), then a random crop and a
    random horizontal flip for training, the central crop for evaluation.
    """
    return _crop(_decode_resized(encoded, cfg), cfg, training)


def _decode_resized(encoded: tf.Tensor, cfg) -> tf.Tensor:
    resize = _image_cfg(cfg).resize_px
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image = tf.ensure_shape(image, [None, None, 3])
    return tf.image.resize(image, [resize, resize], method="bilinear", antialias=True)


def _crop(image: tf.Tensor, cfg, training: bool) -> tf.Tensor:
    resize, crop = _image_cfg(cfg).resize_px, _image_cfg(cfg).crop_px
    if training:
        image = tf.image.random_crop(image, [crop, crop, 3])
        image = tf.image.random_flip_left_right(image)
    else:
        offset = (resize - crop) // 2
        image = image[offset:offset + crop, offset:offset + crop, :]
    return tf.clip_by_value(image, 0.0, 255.0)


def list_shards(data_glob: str) -> List[str]:
    files = sorted(tf.io.gfile.glob(data_glob))
    if not files:
        raise FileNotFoundError(f"no TFRecord shard matches {data_glob!r}")
    return files


def _pipeline_ids(input_context: Optional[tf.distribute.InputContext]) -> Tuple[int, int]:
    if input_context is None:
        return 0, 1
    return input_context.input_pipeline_id, input_context.num_input_pipelines


def _per_replica_batch(input_context, global_batch_size: int) -> int:
    if input_context is None:
        return global_batch_size
    return input_context.get_per_replica_batch_size(global_batch_size)


class BadInputError(RuntimeError):
    """A corrupt TFRecord, malformed Example or undecodable image; the message names the file."""


@contextlib.contextmanager
def naming_bad_input():
    """Re-raises the input's bad-record assertion (a tf.errors.InvalidArgumentError, whichever
    strategy or tf.function it came through) as BadInputError with just its message."""
    try:
        yield
    except tf.errors.OpError as error:
        found = re.search(re.escape(_BAD_INPUT) + r"(.*?)\]?\s*(?:\n|\[\[|$)", str(error), re.S)
        if not found:
            raise
        raise BadInputError(found.group(1)) from error


class SkippedInput:
    """The bad records that input pipelines built with skip_corrupt_records dropped (module doc)."""

    NAMES = ("corrupt_records", "undecodable_images")

    def __init__(self):
        self._tables: List[Dict[str, tf.lookup.experimental.MutableHashTable]] = []
        self._named, self._capped = set(), False

    def new_tables(self) -> Dict[str, tf.lookup.experimental.MutableHashTable]:
        """Tables of one input pipeline; made where it is built, so on its device. Key file@offset,
        value: the bytes of the file left unread (corrupt data), else -1."""
        tables = {name: tf.lookup.experimental.MutableHashTable(tf.string, tf.int64, -2)
                  for name in self.NAMES}
        self._tables.append(tables)
        return tables

    def counts(self) -> Dict[str, int]:
        """{"skipped_corrupt_records": n, "skipped_undecodable_images": m}: distinct records."""
        return {f"skipped_{name}": sum(int(t[name].size()) for t in self._tables)
                for name in self.NAMES}

    def entries(self) -> List[Tuple[str, str, int, int]]:
        """Sorted (name, file, offset, unread bytes or -1) of every skipped record."""
        out = []
        for tables in self._tables:
            for name, table in tables.items():
                keys, values = table.export()
                for key, value in zip(keys.numpy(), values.numpy()):
                    file, offset = key.decode("utf-8", "replace").rsplit("@", 1)
                    out.append((name, file, int(offset), int(value)))
        return sorted(out)

    def warn_new(self) -> Dict[str, int]:
        """logging.warning naming each skipped record not named yet (the first _MAX_NAMED), then
        the counts."""
        counts = self.counts()
        total = sum(counts.values())
        if total > _MAX_NAMED and not self._capped:
            self._capped = True
            logging.warning("%d bad input records skipped: further ones are counted, not named",
                            total)
        if self._capped or total <= len(self._named):
            return counts
        for name, file, offset, value in self.entries():
            if (name, file, offset) in self._named:
                continue
            self._named.add((name, file, offset))
            if name == "undecodable_images":
                why = "its image/encoded does not decode"
            elif value >= 0:
                why = (f"corrupt or truncated TFRecord data; the rest of the file ({value} bytes) "
                       "is not read")
            else:
                why = "not a tf.train.Example of the schema"
            logging.warning("skipped the record at byte offset %d of %s: %s", offset, file, why)
        return counts


def _file_sizes(files: List[str]) -> List[int]:
    with ThreadPoolExecutor(16) as pool:  # a gs:// stat is a round trip
        return list(pool.map(lambda f: tf.io.gfile.stat(f).length, files))


def _read_file(file: tf.Tensor, size: tf.Tensor, log_errors: bool) -> tf.data.Dataset:
    """{"file", "offset", "kind", "record", "unread"} of one file's records, then a CORRUPT marker
    where they stop if that is before the file's end (module doc). log_errors: TensorFlow's own
    message (failing runs; when skipping it would repeat every epoch, the loop names the record)."""
    records = tf.data.TFRecordDataset(file, buffer_size=_READ_BUFFER_BYTES).ignore_errors(
        log_warning=log_errors)
    records = records.map(lambda r: (r, False)).concatenate(
        tf.data.Dataset.from_tensors((tf.constant(""), True)))

    def locate(offset, item):
        record, is_end = item
        kind = tf.where(is_end, tf.where(offset < size, CORRUPT, END), RECORD)
        located = {"file": file, "offset": offset, "kind": kind, "record": record,
                   "unread": size - offset}
        return offset + _FRAMING_BYTES + tf.cast(tf.strings.length(record), tf.int64), located
    return records.scan(tf.constant(0, tf.int64), locate).filter(lambda e: e["kind"] != END)


def _drop_bad(tables: Optional[Dict]):
    """filter predicate: True for a good record; a bad one is recorded in `tables` (skip mode) or,
    with tables None, fails the input with a message that names its file and offset."""
    def insert(table, key, value):
        with tf.control_dependencies([table.insert(key, value)]):
            return tf.constant(False)

    def bad(e):
        if tables is None:
            message = tf.strings.join([
                _BAD_INPUT, tf.gather(_WHAT, e["kind"]), e["file"], " at byte offset ",
                tf.strings.as_string(e["offset"]),
                " (align-train --skip_corrupt_records skips and counts such records)"])
            with tf.control_dependencies([tf.debugging.Assert(False, [message], summarize=1)]):
                return tf.constant(False)
        key = tf.strings.join([e["file"], "@", tf.strings.as_string(e["offset"])])
        value = e["unread"] if "unread" in e else tf.constant(-1, tf.int64)  # only CORRUPT has it
        return tf.cond(e["kind"] == UNDECODABLE,
                       lambda: insert(tables["undecodable_images"], key, value),
                       lambda: insert(tables["corrupt_records"], key, value))
    return lambda e: tf.cond(e["kind"] == RECORD, lambda: tf.constant(True), lambda: bad(e))


def _records(files: List[str], input_context, cfg: TrainConfig, training: bool,
             seed: int, tables: Optional[Dict] = None) -> tf.data.Dataset:
    """Located serialized Examples ({"file", "offset", "record", ...}) of this input pipeline's
    share of the shards; corrupt data is already dropped (tables) or failed on (None)."""
    pipeline_id, num_pipelines = _pipeline_ids(input_context)
    shard_files = len(files) >= num_pipelines
    if not shard_files:
        logging.warning("%d shards for %d input pipelines: sharding by record (every host "
                        "reads every shard); write more shards", len(files), num_pipelines)
    else:  # as Dataset.shard would, but before the stats: each host stats only its own files
        files = files[pipeline_id::num_pipelines]
    ds = tf.data.Dataset.from_tensor_slices(
        (tf.constant(files, tf.string), tf.constant(_file_sizes(files), tf.int64)))
    num_files = len(files)
    if training:
        ds = ds.shuffle(max(num_files, 1), seed=seed, reshuffle_each_iteration=True).repeat()

    def read(file, size):  # the check per file: in parallel, unless sharding by record
        records = _read_file(file, size, tables is None)
        return records.filter(_drop_bad(tables)) if shard_files else records
    ds = ds.interleave(read, cycle_length=max(1, min(cfg.cycle_length, num_files)),
                       block_length=1, num_parallel_calls=AUTOTUNE, deterministic=not training)
    if not shard_files:  # after the shard: each pipeline counts only its own share's markers
        ds = ds.shard(num_pipelines, pipeline_id).filter(_drop_bad(tables))
    return ds


def _build(input_context, data_glob: str, vocab_path: str, cfg: TrainConfig, training: bool,
           seed: int, drop_remainder: bool, with_image_ids: bool = False,
           skipped: Optional[SkippedInput] = None) -> tf.data.Dataset:
    files = list_shards(data_glob)
    batch_size = _per_replica_batch(input_context, cfg.global_batch_size)
    tokenizer = make_text_tokenizer(vocab_path, cfg.model.text.max_tokens)
    tables = (skipped or SkippedInput()).new_tables() if cfg.skip_corrupt_records else None
    ds = _records(files, input_context, cfg, training, seed, tables)
    if training:
        ds = ds.shuffle(cfg.shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    resize = _image_cfg(cfg).resize_px

    def decode(e: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        features = example_schema.parse_example(e["record"])
        encoded = features[example_schema.IMAGE_ENCODED]
        decoded = {"image": _decode_resized(encoded, cfg), "text": features[example_schema.TEXT],
                   "file": e["file"], "offset": e["offset"], "kind": tf.constant(RECORD)}
        if with_image_ids:  # pairs that share an image share its id (the stored SHA-256)
            sha = features[example_schema.IMAGE_SHA256]
            fingerprint = tf.strings.as_string(  # records written without a SHA-256
                tf.strings.to_hash_bucket_strong(encoded, 2 ** 63 - 1, [0x414C, 0x49474E]))
            decoded["image_id"] = tf.where(tf.strings.length(sha) > 0, sha, fingerprint)
        return decoded

    def marker(kind: int, parse_first: bool = False):
        def mark(e):  # parse_first: only if the record parses (a data dependency: never pruned)
            text = (example_schema.parse_example(e["record"])[example_schema.TEXT] if parse_first
                    else tf.constant(""))
            out = {"image": tf.zeros([resize, resize, 3]), "text": text,
                   "file": e["file"], "offset": e["offset"], "kind": tf.constant(kind)}
            if with_image_ids:
                out["image_id"] = tf.constant("")
            return out
        return mark

    def decode_or_mark(e):  # the "try" of the module doc; take(1): a marker only on failure
        one = tf.data.Dataset.from_tensors(e)
        return (one.map(decode).ignore_errors(log_warning=tables is None)
                .concatenate(one.map(marker(UNDECODABLE, parse_first=True)).ignore_errors())
                .concatenate(one.map(marker(MALFORMED))).take(1).filter(_drop_bad(tables)))

    def augment(e: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        out = {"image": _crop(e["image"], cfg, training), "text": e["text"]}
        if with_image_ids:
            out["image_id"] = e["image_id"]
        return out

    def tokenize(batch: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        token_ids, padding_mask = tokenizer(batch["text"])
        if drop_remainder:  # the tokenizer's signature has a dynamic batch; restore the static one
            token_ids = tf.ensure_shape(token_ids, [batch_size, None])
            padding_mask = tf.ensure_shape(padding_mask, [batch_size, None])
        out = {"image": batch["image"], "token_ids": token_ids, "padding_mask": padding_mask}
        if with_image_ids:
            out["image_id"] = batch["image_id"]
        return out

    ds = ds.interleave(decode_or_mark, cycle_length=AUTOTUNE, block_length=1,
                       num_parallel_calls=AUTOTUNE, deterministic=not training)
    ds = ds.map(augment, num_parallel_calls=AUTOTUNE, deterministic=not training)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    ds = ds.map(tokenize, num_parallel_calls=AUTOTUNE)  # vectorized over the batch
    return ds.prefetch(AUTOTUNE)


def build_train_dataset(input_context: Optional[tf.distribute.InputContext], data_glob: str,
                        vocab_path: str, cfg: TrainConfig,
                        seed: Optional[int] = None,
                        skipped: Optional[SkippedInput] = None) -> tf.data.Dataset:
    """Endless, shuffled, augmented batches of the per-replica batch size (static shapes).

    `seed` defaults to cfg.seed; the training loop passes a seed derived from the step it resumes
    from, so that a resumed run does not replay the first batches of the previous one.
    `skipped` records what cfg.skip_corrupt_records drops (the loop logs and returns its counts).
    """
    seed = cfg.seed if seed is None else seed
    return _build(input_context, data_glob, vocab_path, cfg, True, seed, drop_remainder=True,
                  skipped=skipped)


def build_eval_dataset(input_context: Optional[tf.distribute.InputContext], data_glob: str,
                       vocab_path: str, cfg: TrainConfig, drop_remainder: bool = True,
                       with_image_ids: bool = False,
                       skipped: Optional[SkippedInput] = None) -> tf.data.Dataset:
    """One deterministic pass, file order, central crops; drop_remainder=False keeps the tail.
    with_image_ids adds "image_id" (tf.string [B]): the stored image SHA-256, so that pairs
    sharing an image are one retrieval target (as `align-eval retrieval` counts them)."""
    return _build(input_context, data_glob, vocab_path, cfg, False, cfg.seed, drop_remainder,
                  with_image_ids, skipped)
