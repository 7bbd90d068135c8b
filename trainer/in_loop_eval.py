"""Held-out evaluation during training (`align-train --eval_data GLOB --eval_every_steps N`).

As big_vision's evaluators and open_clip's `--val-data`: every N steps (and at the last step) the
model being trained embeds the held-out pairs (central crops, inference mode: BatchNorm's moving
statistics, no dropout or drop-connect, exactly what the export computes) and is scored with
the routine `align-eval retrieval` uses (trainer.evaluation.tasks.retrieval_from_embeddings):

- image->text and text->image Recall@1/5/10 (pairs sharing an image are one image target);
- the held-out contrastive loss, defined as the training loss (both directions summed, the same
  label smoothing and learned temperature), averaged over consecutive chunks of
  `global_batch_size` pairs (the last, smaller chunk left out), so it reads on the training
  loss's scale: chance is 2 ln(global_batch_size);
- the health of both embedding spaces (effective rank, mean pairwise cosine), which shows a
  collapsed tower long before recall does.

The forward pass runs through `strategy.run` with the same (undistributed) batch on every replica and
takes the first replica's result, which works under every strategy the trainer supports; in a
multi-worker run every worker evaluates (no collective is left waiting) and the chief logs.
"""
import logging
import math
from typing import Callable, Dict, List

import numpy as np
import tensorflow as tf

from trainer import input_pipeline
from trainer.config import TrainConfig
from trainer.evaluation import tasks
from trainer.loss import contrastive_loss


def heldout_loss(image_emb: np.ndarray, text_emb: np.ndarray, temperature: float,
                 label_smoothing: float, chunk_size: int) -> float:
    """Mean training-definition loss over consecutive full chunks of `chunk_size` pairs (NaN when
    there are fewer pairs than one chunk)."""
    losses = []
    for start in range(0, len(image_emb) - chunk_size + 1, chunk_size):
        chunk = slice(start, start + chunk_size)
        loss = contrastive_loss(tf.constant(image_emb[chunk]), tf.constant(text_emb[chunk]),
                                tf.constant(temperature, tf.float32), label_smoothing=label_smoothing)
        losses.append(float(loss["loss"]))
    return float(np.mean(losses)) if losses else float("nan")


def flat_metrics(result: dict) -> Dict[str, float]:
    """{"i2t_R@1": ..., "t2i_R@10": ..., "image_effective_rank": ...} from a retrieval result."""
    flat = {}
    for direction, short in (("image_to_text", "i2t"), ("text_to_image", "t2i")):
        for name, value in result[direction].items():
            flat[f"{short}_{name}"] = value
    for tower, health in result["embedding_health"].items():
        for name, value in health.items():
            flat[f"{tower}_{name}"] = value
    if "loss" in result:
        flat["loss"] = result["loss"]
    return flat


def format_eval(step: int, result: dict) -> str:
    i2t, t2i = result["image_to_text"], result["text_to_image"]
    health = result["embedding_health"]
    return (f"eval step {step} | {result['num_texts']} held-out pairs | i2t R@1/5/10 "
            f"{i2t['R@1']:.1%}/{i2t['R@5']:.1%}/{i2t['R@10']:.1%} | t2i R@1/5/10 "
            f"{t2i['R@1']:.1%}/{t2i['R@5']:.1%}/{t2i['R@10']:.1%} | loss {result['loss']:.4f} "
            f"| eff. rank img {health['image']['effective_rank']:.1f} txt "
            f"{health['text']['effective_rank']:.1f} | mean cos img "
            f"{health['image']['mean_pairwise_cosine']:.3f} txt "
            f"{health['text']['mean_pairwise_cosine']:.3f}")


class InLoopEvaluator:
    """Scores a model on held-out TFRecords; build once, call `evaluate(model, strategy)` often."""

    def __init__(self, data_glob: str, vocab_path: str, cfg: TrainConfig):
        self.cfg = cfg
        self.dataset = input_pipeline.build_eval_dataset(
            None, data_glob, vocab_path, cfg, drop_remainder=False, with_image_ids=True)
        self._embed = None

    def _embed_fn(self, model, strategy) -> Callable:
        def replica_embed(batch):
            return (model.embed_images(batch["image"], training=False),
                    model.embed_texts(batch["token_ids"], batch["padding_mask"], training=False))

        @tf.function(reduce_retracing=True)
        def embed(batch):
            image_emb, text_emb = strategy.run(replica_embed, args=(batch,))
            return (strategy.experimental_local_results(image_emb)[0],
                    strategy.experimental_local_results(text_emb)[0])
        return embed

    def embeddings(self, model, strategy):
        """(image_emb [N, D], text_emb [N, D], image ids [N]) of every held-out pair, in file order."""
        if self._embed is None:
            self._embed = self._embed_fn(model, strategy)
        image_parts: List[np.ndarray] = []
        text_parts: List[np.ndarray] = []
        ids: List[bytes] = []
        for batch in self.dataset:
            image_emb, text_emb = self._embed(
                {k: v for k, v in batch.items() if k != "image_id"})
            image_parts.append(image_emb.numpy())
            text_parts.append(text_emb.numpy())
            ids.extend(batch["image_id"].numpy().tolist())
        return np.concatenate(image_parts), np.concatenate(text_parts), ids

    def evaluate(self, model, strategy) -> dict:
        image_emb, text_emb, text_image_ids = self.embeddings(model, strategy)
        if len(text_image_ids) < 2:
            raise ValueError("in-loop evaluation needs at least 2 held-out pairs")
        result = tasks.retrieval_from_pair_embeddings(image_emb, text_emb, text_image_ids)
        temperature = float(tf.convert_to_tensor(model.temperature))
        result["loss"] = heldout_loss(image_emb, text_emb, temperature, self.cfg.label_smoothing,
                                      self.cfg.global_batch_size)
        if math.isnan(result["loss"]):
            logging.warning("held-out loss: fewer held-out pairs (%d) than one global batch (%d)",
                            len(text_image_ids), self.cfg.global_batch_size)
        return result
