"""b0_parity_cpu: the side-by-side benchmark with open_clip (bench/peer_parity.py), a SMALL-SCALE recipe.

Model shape shared with the peer: EfficientNet-B0 at full width and depth on 64 px crops (72 px
resize), a 2-layer, 128-wide, 2-head BERT over 32 tokens, 128-d embeddings; batch 64, 370 steps
(4 epochs of the 5,918 training pairs).

Departures from the paper (4.1), each measured on this benchmark (docs/TRAINING.md, "Why the trainer
learned slowly"); the paper's configs (b3_bert_mini, b7_bert_base, l2_bert_large) keep its recipe:
- text pooling "mean" instead of [CLS]: a from-scratch post-LN BERT's [CLS] output barely depends
  on the caption for the first few hundred steps;
- temperature initialised at 0.07 (CLIP's) instead of 1.0: at 1.0 the loss is minimised by
  embeddings spread along one direction (effective rank ~1-2), and the learned temperature falls
  too slowly for a short run;
- AdamW at 1e-3 (CLIP's optimizer) instead of LAMB;
- no drop-connect (0.2 costs ~6 points of held-out R@10 at 4 epochs).
Text dropout and label smoothing keep the paper's 0.1: leaving them out made no measurable
difference (docs/TRAINING.md, leave-one-out).
Precise BatchNorm statistics (batch_norm_recalibration_batches) are on in every config.

Command (data: the split of bench/peer_parity.py or docs/RESULTS.md):

    align-train --config b0_parity_cpu --data 'SPLIT/train-*.tfrecord' --vocab CURATED/vocab.txt \
        --workdir /tmp/align_parity --eval_data 'SPLIT/heldout-*.tfrecord' --eval_every_steps 74
"""
from trainer.config import (ImageTowerConfig, ModelConfig, OptimConfig, TextTowerConfig,
                            TrainConfig)


def get_config() -> TrainConfig:
    return TrainConfig(
        model=ModelConfig(
            image=ImageTowerConfig(
                variant="B0",  # full width and depth, as the peer's timm efficientnet_b0
                resize_px=72,
                crop_px=64,
                projection_dim=128,
                drop_connect_rate=0.0,  # small-scale departure (see docstring)
            ),
            text=TextTowerConfig(size="tiny", max_tokens=32, dropout_rate=0.1,  # paper 4.1
                                 pooling="mean"),  # small-scale departure
            temperature_init=0.07,  # small-scale departure (paper: 1.0)
        ),
        optim=OptimConfig(
            optimizer="adamw",  # small-scale departure (paper: LAMB)
            peak_learning_rate=1e-3,
            warmup_steps=37,  # 10% of the run, as the peer's 37 warm-up steps
            total_steps=370,
            weight_decay=1e-5,
        ),
        global_batch_size=64,
        label_smoothing=0.1,  # paper 4.1
        mixed_precision="float32",
        shuffle_buffer=1_000,
        cycle_length=4,
        checkpoint_every_steps=100,
        keep_checkpoints=2,
        log_every_steps=10,
    )
