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
named by file and byte offset, and fails the input or, with `skip_corrupt_records`, is skipped and
counted: trainer/bad_input.py has the design; here, records are read located (file, offset, with
a marker where a file's data is corrupt) and parsed and decoded through its `decode_checked`.
"""
import json
import logging
from typing import Dict, List, Optional, Tuple

import tensorflow as tf
import tensorflow_text as tf_text

from schemas import example_schema
from trainer import bad_input
from trainer.config import ImageTowerConfig, TrainConfig

AUTOTUNE = tf.data.AUTOTUNE
PAD, UNK, CLS, SEP = "[PAD]", "[UNK]", "[CLS]", "[SEP]"


PRESET_VOCAB = "assets/tokenizer/vocabulary.txt"  # keras-hub's tokenizer.save_to_preset(DIR)


def preset_vocab_file(preset_dir: str) -> str:
    """The WordPiece vocabulary of a keras-hub preset directory (model.text.preset)."""
    path = f"{preset_dir.rstrip('/')}/{PRESET_VOCAB}"
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{preset_dir}: a preset directory without {PRESET_VOCAB} (save "
                                "the tokenizer too: tokenizer.save_to_preset(DIR))")
    config_path = f"{preset_dir.rstrip('/')}/tokenizer.json"
    if tf.io.gfile.exists(config_path):
        with tf.io.gfile.GFile(config_path, "r") as f:
            tokenizer_config = json.load(f).get("config", {})
        if tokenizer_config.get("lowercase") is False:  # this trainer's tokenizer lower-cases
            raise ValueError(f"{preset_dir}: a cased vocabulary (tokenizer.json lowercase=false); "
                             "the trainer's WordPiece tokenizer lower-cases: use an uncased preset")
    return path


def vocab_file(vocab_path: str) -> str:
    """--vocab as a file: vocab.txt itself, or a preset directory's vocabulary."""
    return preset_vocab_file(vocab_path) if tf.io.gfile.isdir(vocab_path) else vocab_path


def read_vocab(vocab_path: str) -> List[str]:
    """The tokens of vocab.txt, one per line, in id order (local path or gs://); a keras-hub preset
    directory stands for its vocabulary (preset_vocab_file)."""
    with tf.io.gfile.GFile(vocab_file(vocab_path), "r") as f:
        return [line.rstrip("\n") for line in f]


def check_vocab_matches_preset(vocab_path: str, cfg) -> None:
    """With model.text.preset, the trainer's vocabulary (--vocab) must be the preset's, token for
    token (pass --vocab PRESET_DIR): the BERT's embeddings are indexed by it. `cfg`: a TrainConfig
    or a TextTowerConfig."""
    text_cfg = cfg.model.text if isinstance(cfg, TrainConfig) else cfg
    preset = getattr(text_cfg, "preset", None)
    if not preset:
        return
    ours, theirs = read_vocab(vocab_path), read_vocab(preset_vocab_file(preset))
    if ours != theirs:
        first = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b),
                     min(len(ours), len(theirs)))
        got = ours[first] if first < len(ours) else "end of file"
        want = theirs[first] if first < len(theirs) else "end of file"
        raise ValueError(
            f"--vocab {vocab_path} ({len(ours)} tokens) is not the vocabulary of model.text.preset "
            f"{preset} ({len(theirs)} tokens): line {first + 1} is {got!r}, the preset's "
            f"{want!r}; pass --vocab {preset}")


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
        self._vocab_asset = tf.saved_model.Asset(vocab_file(vocab_path))  # copied into exports
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


def _records(files: List[str], input_context, cfg: TrainConfig, training: bool, seed: int,
             log_errors: bool = True) -> tf.data.Dataset:
    """Located serialized Examples ({"file", "offset", "kind", "record", "unread"}) of this input
    pipeline's share of the shards, with a CORRUPT marker where a file's records stop early."""
    pipeline_id, num_pipelines = _pipeline_ids(input_context)
    shard_files = len(files) >= num_pipelines
    if not shard_files:
        logging.warning("%d shards for %d input pipelines: sharding by record (every host "
                        "reads every shard); write more shards", len(files), num_pipelines)
    else:  # as Dataset.shard would, but before the stats: each host stats only its own files
        files = files[pipeline_id::num_pipelines]
    ds = tf.data.Dataset.from_tensor_slices(
        (tf.constant(files, tf.string), tf.constant(bad_input.file_sizes(files), tf.int64)))
    num_files = len(files)
    if training:
        ds = ds.shuffle(max(num_files, 1), seed=seed, reshuffle_each_iteration=True).repeat()
    ds = ds.interleave(lambda file, size: bad_input.read_file(file, size, log_errors),
                       cycle_length=max(1, min(cfg.cycle_length, num_files)),
                       block_length=1, num_parallel_calls=AUTOTUNE, deterministic=not training)
    if not shard_files:  # markers too: each pipeline counts only its own share's
        ds = ds.shard(num_pipelines, pipeline_id)
    return ds


def _build(input_context, data_glob: str, vocab_path: str, cfg: TrainConfig, training: bool,
           seed: int, drop_remainder: bool, with_image_ids: bool = False,
           skipped: Optional[bad_input.SkippedInput] = None) -> tf.data.Dataset:
    files = list_shards(data_glob)
    batch_size = _per_replica_batch(input_context, cfg.global_batch_size)
    check_vocab_matches_preset(vocab_path, cfg)
    tokenizer = make_text_tokenizer(vocab_path, cfg.model.text.max_tokens)
    skipped = skipped or bad_input.SkippedInput()
    tables = skipped.new_tables() if cfg.skip_corrupt_records else None
    ds = _records(files, input_context, cfg, training, seed, log_errors=tables is None)
    if training:
        ds = ds.shuffle(cfg.shuffle_buffer, seed=seed, reshuffle_each_iteration=True)

    def decode(features: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        encoded = features[example_schema.IMAGE_ENCODED]
        decoded = {"image": preprocess_image_bytes(encoded, cfg, training),
                   "text": features[example_schema.TEXT]}
        if with_image_ids:  # pairs that share an image share its id (the stored SHA-256)
            sha = features[example_schema.IMAGE_SHA256]
            fingerprint = tf.strings.as_string(  # records written without a SHA-256
                tf.strings.to_hash_bucket_strong(encoded, 2 ** 63 - 1, [0x414C, 0x49474E]))
            decoded["image_id"] = tf.where(tf.strings.length(sha) > 0, sha, fingerprint)
        return decoded

    def tokenize(batch: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        token_ids, padding_mask = tokenizer(batch["text"])
        if drop_remainder:  # the tokenizer's signature has a dynamic batch; restore the static one
            token_ids = tf.ensure_shape(token_ids, [batch_size, None])
            padding_mask = tf.ensure_shape(padding_mask, [batch_size, None])
        out = {"image": batch["image"], "token_ids": token_ids, "padding_mask": padding_mask}
        if with_image_ids:
            out["image_id"] = batch["image_id"]
        return out

    ds = bad_input.decode_checked(ds, decode, tables, endless=training)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    ds = ds.map(tokenize, num_parallel_calls=AUTOTUNE)  # vectorized over the batch
    return ds.prefetch(AUTOTUNE)


def build_train_dataset(input_context: Optional[tf.distribute.InputContext], data_glob: str,
                        vocab_path: str, cfg: TrainConfig,
                        seed: Optional[int] = None,
                        skipped: Optional[bad_input.SkippedInput] = None) -> tf.data.Dataset:
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
                       skipped: Optional[bad_input.SkippedInput] = None) -> tf.data.Dataset:
    """One deterministic pass, file order, central crops; drop_remainder=False keeps the tail.
    with_image_ids adds "image_id" (tf.string [B]): the stored image SHA-256, so that pairs
    sharing an image are one retrieval target (as `align-eval retrieval` counts them)."""
    return _build(input_context, data_glob, vocab_path, cfg, False, cfg.seed, drop_remainder,
                  with_image_ids, skipped)
