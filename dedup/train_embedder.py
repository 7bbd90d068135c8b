"""`align-dedup train-embedder`: trains the learned copy-detection embedder (issue #11, point 2).

No pretrained copy-detection weights can be downloaded here, so the project trains its own, self-
supervised, on augmented views of its own images (SSCD, Pizzi et al. 2022; SimCLR, Chen et al.
2020): each step takes `batch_size` distinct images, makes two views of each (view A is the image
itself half of the time, so that the pairs the benchmark and the dedup stage ask about, original vs
copy, are trained directly; view B, and A otherwise, is dedup.augment.random_view: 1-3 of the
copy-detection families), and minimizes InfoNCE + koleo_weight * KoLeo (dedup/embedder_model.py).

  WORKDIR/checkpoints/  model + optimizer, every --checkpoint_every steps and at the end; a re-run
                        with the same WORKDIR continues from the latest one
  WORKDIR/tensorboard/  scalars loss, infonce, koleo, lr, views_per_s
  WORKDIR/export/       SavedModel, signature embed_image (use as --dedup_embedder WORKDIR/export)
  WORKDIR/train_config.json

Input: images are decoded once with schemas.image_decode.decode_rgb (EXIF, alpha on white, first
frame) and kept in memory shrunk to at most 2 x image_px per side (augmentations then cost little;
the export resizes the full image in one step instead, a difference of one antialiased resample).
Views are made by a thread pool (Pillow releases the GIL) feeding tf.data from a generator; the
final resize to image_px is the export's own TF op (embedder_model.to_model_input).

CPU sizing (measured on the shared 2-core machine, load 6-9, one train step of 128 views):
B0 (width 1.0, depth 1.0) 15-28 views/s at 96 px, 9 at 128 px, 5 at 160 px; width 0.5 / depth
0.5 (0.75M parameters) 43-55 views/s at 96-128 px, and 35-58 views/s at 112 px with this input
pipeline (views made on the same cores). The defaults (112 px, width 0.5, depth 0.5) are the most
training a 30-45 minute CPU budget allows (700 steps of 64 images: docs/DEDUP.md); on
accelerators use B0 (1.0, 1.0) at 224 px and far more steps (SSCD trains a ResNet-50 at 224 px
for 100 epochs of DISC21's 1M images).
"""
import argparse
import concurrent.futures
import dataclasses
import io
import json
import os
import time
from typing import Iterator, List, Sequence

import numpy as np
from PIL import Image

from dedup import augment
from dedup.eval_inputs import iter_eval_images
from schemas.image_decode import decode_rgb


@dataclasses.dataclass
class EmbedderTrainConfig:
    steps: int = 700  # ~35 min on 2 shared CPU cores at the defaults
    batch_size: int = 64  # images per step; 2 views each, so 2 * batch_size - 2 negatives per view
    image_px: int = 112
    embedding_dim: int = 128
    width: float = 0.5  # EfficientNet width/depth coefficients (B0 is 1.0 / 1.0)
    depth: float = 0.5
    learning_rate: float = 2e-3  # AdamW peak, after linear warm-up, cosine decay to 0
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    temperature: float = 0.05  # SSCD
    koleo_weight: float = 30.0  # SSCD's lambda
    identity_view_fraction: float = 0.5
    num_overlays: int = 64  # training images used as emoji-overlay stickers (alpha kept)
    workers: int = 2  # view-making threads
    checkpoint_every: int = 100
    log_every: int = 10
    keep_checkpoints: int = 3
    seed: int = 0
    run_eagerly: bool = False  # no tf.function: slower steps, no tracing (debugging, tiny tests)


def load_images(globs: Sequence[str], max_side: int, num_overlays: int, seed: int,
                print_fn=print):
    """(list of RGB images shrunk to max_side, list of RGBA overlay stickers), read with the
    project's readers (image folders, webdataset tars, TFRecords; dedup.eval_inputs)."""
    skipped: list = []
    images, raw = [], []
    for _, data in iter_eval_images(list(globs), skipped):
        image = decode_rgb(data)
        image.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
        images.append(image)
        raw.append(data)
    if skipped:
        print_fn(f"{len(skipped)} unreadable images skipped (first: {skipped[0]['eval_key']})")
    if len(images) < 2:
        raise ValueError(f"train-embedder needs at least 2 readable images, found {len(images)}")
    overlays = []
    for i in np.random.default_rng(seed).permutation(len(raw))[:num_overlays]:
        sticker = Image.open(io.BytesIO(raw[int(i)]))
        sticker.seek(0)
        sticker = sticker.convert("RGBA")
        sticker.thumbnail((64, 64))
        overlays.append(sticker)
    return images, overlays


def _pair(image: Image.Image, overlays, seed: Sequence[int], identity_fraction: float):
    rng = np.random.default_rng(list(seed))
    first = image if rng.random() < identity_fraction else augment.random_view(image, rng, overlays)
    second = augment.random_view(image, rng, overlays)
    return np.asarray(first.convert("RGB")), np.asarray(second.convert("RGB"))


def view_stream(images: List[Image.Image], overlays, cfg: EmbedderTrainConfig,
                start_step: int, batch_size: int) -> Iterator[np.ndarray]:
    """Views in training order from `start_step` on: per step, 2 * batch_size uint8 arrays, the
    two views of image i at positions 2i and 2i+1. Views depend only on (seed, step, i), so a
    resumed run makes the views the uninterrupted run would have made. Two steps are in flight in
    the thread pool while the model trains on the current one."""
    with concurrent.futures.ThreadPoolExecutor(cfg.workers) as pool:
        def submit(step):
            rng = np.random.default_rng([cfg.seed, step])
            chosen = rng.choice(len(images), size=batch_size, replace=False)
            return [pool.submit(_pair, images[int(i)], overlays, (cfg.seed, step, j),
                                cfg.identity_view_fraction) for j, i in enumerate(chosen)]
        pending = [submit(start_step), submit(start_step + 1)]
        step = start_step
        while True:
            futures = pending.pop(0)
            pending.append(submit(step + 2))
            for future in futures:
                yield from future.result()
            step += 1


def make_dataset(images, overlays, cfg: EmbedderTrainConfig, start_step: int, batch_size: int):
    import tensorflow as tf

    from dedup import embedder_model

    dataset = tf.data.Dataset.from_generator(
        lambda: view_stream(images, overlays, cfg, start_step, batch_size),
        output_signature=tf.TensorSpec([None, None, 3], tf.uint8))
    dataset = dataset.map(lambda rgb: embedder_model.to_model_input(rgb, cfg.image_px),
                          num_parallel_calls=2, deterministic=True)
    return dataset.batch(2 * batch_size, drop_remainder=True).prefetch(2)


def _write_scalar(tf, name: str, value: float, step: int) -> None:
    """A TensorBoard scalar written with the scalar plugin's metadata (as trainer/loop_reporting
    does): tf.summary.scalar needs the `tensorboard` package, which is not installed here."""
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
        data_class=summary_pb2.DATA_CLASS_SCALAR).SerializeToString()
    tf.summary.write(name, tf.constant(value, tf.float32), step=step, metadata=metadata)


def train_embedder(image_globs: Sequence[str], workdir: str, cfg: EmbedderTrainConfig,
                   print_fn=print, export: bool = True) -> dict:
    """Trains (or resumes) to cfg.steps, then (with `export`) writes WORKDIR/export. Returns a
    summary dict."""
    import keras
    import tensorflow as tf

    from dedup import embedder_model  # TensorFlow only when training: the CLI starts fast

    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "train_config.json"), "w") as f:
        json.dump({"images": list(image_globs), **dataclasses.asdict(cfg)}, f, indent=2)
    started = time.time()
    images, overlays = load_images(image_globs, 2 * cfg.image_px, cfg.num_overlays, cfg.seed,
                                   print_fn)
    batch_size = min(cfg.batch_size, len(images))
    print_fn(f"{len(images)} training images, {len(overlays)} overlay stickers "
             f"({time.time() - started:.0f} s); {batch_size} images x 2 views per step")

    keras.utils.set_random_seed(cfg.seed)
    model = embedder_model.build_embedder(cfg.image_px, cfg.embedding_dim, cfg.width, cfg.depth)
    warmup = min(cfg.warmup_steps, max(cfg.steps - 1, 0))
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, max(cfg.steps - warmup, 1), alpha=0.0, warmup_target=cfg.learning_rate,
        warmup_steps=warmup)
    optimizer = keras.optimizers.AdamW(schedule, weight_decay=cfg.weight_decay)
    optimizer.build(model.trainable_variables)  # slots exist before restore
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer)
    manager = tf.train.CheckpointManager(checkpoint, os.path.join(workdir, "checkpoints"),
                                         cfg.keep_checkpoints)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        print_fn(f"resumed from {manager.latest_checkpoint}")
    start_step = int(optimizer.iterations.numpy())

    def train_step(pixels):
        with tf.GradientTape() as tape:
            embeddings = model(pixels, training=True)
            infonce, koleo = embedder_model.infonce_and_koleo(embeddings, cfg.temperature)
            loss = infonce + cfg.koleo_weight * koleo
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return {"loss": loss, "infonce": infonce, "koleo": koleo}

    if not cfg.run_eagerly:
        train_step = tf.function(train_step)

    writer = tf.summary.create_file_writer(os.path.join(workdir, "tensorboard"))
    step, window, window_start = start_step, [], time.time()
    if step < cfg.steps:
        iterator = iter(make_dataset(images, overlays, cfg, start_step, batch_size))
        with writer.as_default():
            while step < cfg.steps:
                lr = float(schedule(step))
                metrics = {k: float(v) for k, v in train_step(next(iterator)).items()}
                step += 1
                window.append(metrics)
                if step % cfg.log_every == 0 or step == cfg.steps:
                    elapsed = time.time() - window_start
                    means = {k: float(np.mean([m[k] for m in window])) for k in window[0]}
                    views_per_s = 2 * batch_size * len(window) / max(elapsed, 1e-9)
                    for name, value in {**means, "lr": lr, "views_per_s": views_per_s}.items():
                        _write_scalar(tf, name, value, step)
                    eta_min = (cfg.steps - step) * elapsed / len(window) / 60
                    print_fn(f"step {step}/{cfg.steps} loss {means['loss']:.4f} infonce "
                             f"{means['infonce']:.4f} koleo {means['koleo']:.4f} lr {lr:.2e} "
                             f"{views_per_s:.1f} views/s eta {eta_min:.1f} min")
                    window, window_start = [], time.time()
                if step % cfg.checkpoint_every == 0:
                    manager.save(checkpoint_number=step)
        writer.flush()
    if manager.latest_checkpoint is None or not manager.latest_checkpoint.endswith(f"-{step}"):
        manager.save(checkpoint_number=step)
    info = {"signature": embedder_model.SIGNATURE, "step": step, "training_images": len(images),
            "image_px": cfg.image_px, "embedding_dim": cfg.embedding_dim, "width": cfg.width,
            "depth": cfg.depth, "images": list(image_globs)}
    export_dir = os.path.join(workdir, "export")
    if export:
        embedder_model.export(model, cfg.image_px, export_dir, info)
        print_fn(f"exported step {step} to {export_dir} (use --dedup_embedder {export_dir}); "
                 f"{time.time() - started:.0f} s in all")
    return {**info, "start_step": start_step, "export_dir": export_dir,
            "wall_s": time.time() - started}


_FLAG_HELP = {"steps": "total optimizer steps (a re-run continues to this many)",
              "batch_size": "images per step (2 views each)",
              "image_px": "model input side (views and exported inputs are squashed to it)",
              "embedding_dim": "descriptor size D", "width": "EfficientNet width coefficient",
              "depth": "EfficientNet depth coefficient", "learning_rate": "AdamW peak"}


def add_subcommand(subparsers) -> None:
    """`align-dedup train-embedder`: one flag per EmbedderTrainConfig field."""
    parser = subparsers.add_parser(
        "train-embedder", help="train the copy-detection embedder, export a SavedModel",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", action="append", required=True, metavar="GLOB",
                        help="training images (folder, webdataset .tar, TFRecord; repeatable); "
                             "never the images the embedder is evaluated on")
    parser.add_argument("--workdir", required=True,
                        help="local dir: checkpoints/, tensorboard/, export/")
    for field in dataclasses.fields(EmbedderTrainConfig):
        help_text = f"{_FLAG_HELP.get(field.name, '')} (default {field.default})"
        if isinstance(field.default, bool):
            parser.add_argument(f"--{field.name}", action="store_true", help=help_text)
        else:
            parser.add_argument(f"--{field.name}", type=type(field.default),
                                default=field.default, help=help_text)
    parser.set_defaults(func=run)


def run(args) -> int:
    cfg = EmbedderTrainConfig(**{f.name: getattr(args, f.name)
                                 for f in dataclasses.fields(EmbedderTrainConfig)})
    train_embedder(args.images, args.workdir, cfg, print_fn=lambda line: print(line, flush=True))
    return 0
