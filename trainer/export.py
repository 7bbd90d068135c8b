"""SavedModel export of a trained dual encoder (the contract evaluation, search and dedup rely on).

WORKDIR/export/ is a SavedModel of a tf.Module with three signatures:
  embed_image(images: tf.string [None])       -> {"embedding": float32 [None, D]}, L2-normalized;
      encoded JPEG/PNG bytes, evaluation preprocessing inside the graph (resize_px, central crop_px);
  embed_text(texts: tf.string [None])         -> {"embedding": float32 [None, D]}, L2-normalized;
      raw strings, the WordPiece tokenizer inside the graph, vocab.txt stored as a SavedModel asset;
  text_cls_features(texts: tf.string [None])  -> {"features": float32 [None, H]}, BERT's [CLS]
      output before the projection (paper 7 word similarity);
and WORKDIR/export/align_export.json: {"embedding_dim", "config_name", "step", "crop_px", ...}.

The exported model is always rebuilt in float32 outside any distribution strategy and restored from
the checkpoint, so a model trained on TPU in bfloat16 exports to a SavedModel that runs on CPU.

Readers never see a half-written export: everything is written to a sibling EXPORT.tmp-<pid>, then
renamed into place; a previous export is moved aside to EXPORT.old-<pid> first and deleted last
(put back if the rename fails). EXPORT is thus, at every moment, absent (between the two renames),
the previous export or the new one. A process killed while writing leaves EXPORT.tmp-<pid>, and
one killed between the renames EXPORT.old-<pid> (the previous export): both are safe to delete.
On gs:// there is no directory rename: tf.io.gfile.rename copies every object and deletes the
source, so there a reader can see a partly copied EXPORT during the (short) copy.

    python -m trainer.export --workdir DIR [--checkpoint PATH]   # re-export (config from DIR)
"""
import argparse
import json
import os
from typing import Callable, Optional

import keras
import tensorflow as tf

from trainer import input_pipeline
from trainer.config import TrainConfig

EXPORT_INFO_FILE = "align_export.json"


class AlignExportModule(tf.Module):
    """The exported object: the dual encoder, its tokenizer and the preprocessing."""

    def __init__(self, model, tokenizer: input_pipeline.TextTokenizer, cfg: TrainConfig):
        super().__init__(name="align")
        self.model = model
        self.tokenizer = tokenizer
        self._image_cfg = cfg.model.image

    def _pixels(self, images: tf.Tensor) -> tf.Tensor:
        crop = self._image_cfg.crop_px
        return tf.map_fn(
            lambda encoded: input_pipeline.preprocess_image_bytes(encoded, self._image_cfg, False),
            images, fn_output_signature=tf.TensorSpec([crop, crop, 3], tf.float32))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
    def embed_image(self, images):
        embedding = self.model.embed_images(self._pixels(images), training=False)
        return {"embedding": tf.cast(embedding, tf.float32)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="texts")])
    def embed_text(self, texts):
        token_ids, padding_mask = self.tokenizer(texts)
        embedding = self.model.embed_texts(token_ids, padding_mask, training=False)
        return {"embedding": tf.cast(embedding, tf.float32)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="texts")])
    def text_cls_features(self, texts):
        token_ids, padding_mask = self.tokenizer(texts)
        features = self.model.text_cls_features(token_ids, padding_mask, training=False)
        return {"features": tf.cast(features, tf.float32)}


def export_model(model, cfg: TrainConfig, *, vocab_path: str, export_dir: str,
                 config_name: str, step: int) -> str:
    """Saves `model` (float32, built outside any strategy) as the export contract says, to a
    temporary sibling renamed into place (module doc)."""
    export_dir = export_dir.rstrip("/")
    tmp_dir = f"{export_dir}.tmp-{os.getpid()}"
    _remove(tmp_dir)  # a killed earlier run with the same pid (pid 1 in a container) left it
    try:
        _write_export(model, cfg, vocab_path, tmp_dir, config_name, step)
        _publish(tmp_dir, export_dir)
    finally:
        _remove(tmp_dir)  # the write or the rename failed: no half-written leftover
    return export_dir


def _remove(path: str) -> None:
    if tf.io.gfile.exists(path):
        tf.io.gfile.rmtree(path)


def _publish(tmp_dir: str, export_dir: str) -> None:
    """Renames the written tmp_dir to export_dir; an existing export is moved aside first and
    deleted once the new one is in place (put back if that rename fails)."""
    old_dir = f"{export_dir}.old-{os.getpid()}" if tf.io.gfile.exists(export_dir) else None
    if old_dir:
        _remove(old_dir)  # as tmp_dir: left by a killed run with the same pid
        tf.io.gfile.rename(export_dir, old_dir)
    try:
        tf.io.gfile.rename(tmp_dir, export_dir)
    except BaseException:
        if old_dir:
            tf.io.gfile.rename(old_dir, export_dir)
        raise
    if old_dir:
        _remove(old_dir)


def _write_export(model, cfg: TrainConfig, vocab_path: str, export_dir: str, config_name: str,
                  step: int) -> None:
    input_pipeline.check_vocab_matches_preset(vocab_path, cfg)  # model.text.preset's vocabulary
    tokenizer = input_pipeline.make_text_tokenizer(vocab_path, cfg.model.text.max_tokens)
    module = AlignExportModule(model, tokenizer, cfg)
    signatures = {"embed_image": module.embed_image, "embed_text": module.embed_text,
                  "text_cls_features": module.text_cls_features}
    tf.saved_model.save(module, export_dir, signatures=signatures)
    info = {"embedding_dim": int(model.embedding_dim), "config_name": config_name,
            "step": int(step), "crop_px": cfg.model.image.crop_px,
            "resize_px": cfg.model.image.resize_px, "max_tokens": cfg.model.text.max_tokens,
            "vocab_size": tokenizer.vocab_size, "signatures": sorted(signatures)}
    with tf.io.gfile.GFile(os.path.join(export_dir, EXPORT_INFO_FILE), "w") as f:
        json.dump(info, f, indent=2)


def export_from_checkpoint(cfg: TrainConfig, *, vocab_path: str, workdir: str, export_dir: str,
                           config_name: str, build_dual_encoder: Optional[Callable] = None,
                           checkpoint_path: Optional[str] = None) -> str:
    """Rebuilds the model in float32 on the default strategy, restores the (latest) checkpoint of
    WORKDIR/checkpoints and exports it."""
    if build_dual_encoder is None:
        from trainer.model import build_dual_encoder  # noqa: late import
    checkpoint_path = checkpoint_path or tf.train.latest_checkpoint(
        os.path.join(workdir, "checkpoints"))
    if checkpoint_path is None:
        raise FileNotFoundError(f"no checkpoint in {workdir}/checkpoints")
    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        with tf.distribute.get_strategy().scope():  # the default strategy
            vocab_size = len(input_pipeline.read_vocab(vocab_path))
            model = build_dual_encoder(cfg.model, vocab_size)
            step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            tf.train.Checkpoint(model=model, step=step).restore(
                checkpoint_path).assert_existing_objects_matched().expect_partial()
            return export_model(model, cfg, vocab_path=vocab_path, export_dir=export_dir,
                                config_name=config_name, step=int(step.numpy()))
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", required=True, help="a workdir written by align-train")
    parser.add_argument("--checkpoint", default=None, help="default: the latest in WORKDIR")
    parser.add_argument("--export_dir", default=None, help="default: WORKDIR/export")
    args = parser.parse_args(argv)
    from trainer.config_overrides import config_from_dict  # noqa: late import
    with tf.io.gfile.GFile(os.path.join(args.workdir, "config.json")) as f:
        saved = json.load(f)
    cfg = config_from_dict(saved["config"])
    export_dir = args.export_dir or os.path.join(args.workdir, "export")
    export_from_checkpoint(cfg, vocab_path=saved["vocab"], workdir=args.workdir,
                           export_dir=export_dir, config_name=saved["config_name"],
                           checkpoint_path=args.checkpoint)
    print(f"exported {export_dir}")


if __name__ == "__main__":
    main()
