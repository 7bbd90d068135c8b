"""tiny_cpu: a real ALIGN run of a few minutes on a 2-core laptop CPU (smoke run, SMALL-SCALE recipe).

Same loss, schedule shape and input pipeline as the paper; the towers and images are shrunk so that
a step takes well under a second on 2 cores (EfficientNet-B0 at 289 px trains at ~3.5 images/s
there): EfficientNet-B0 with width 0.25 / depth 0.25 at 64 px crops of 72 px images, and BERT-tiny
over at most 32 tokens. The learning-rate schedule keeps the paper's shape (linear warm-up, then
linear decay to zero at the last step) over 300 steps.

Small-scale departures from the paper, the recipe measured on the open_clip parity benchmark
(b0_parity_cpu, docs/TRAINING.md "Why the trainer learned slowly"): mean text pooling instead of
[CLS], temperature initialised at 0.07 instead of 1.0, AdamW at 1e-3 instead of LAMB, no
drop-connect. Text dropout and label smoothing keep the paper's 0.1. The paper's configs keep its
recipe.

Command (curate the bundled demo sample first, see README "Curation"):

    align-train --config tiny_cpu --data 'demo_output/curated/tfrecords/train-*.tfrecord' \
        --vocab demo_output/curated/vocab.txt --workdir /tmp/align_tiny
"""
from trainer.config import (ImageTowerConfig, ModelConfig, OptimConfig, TextTowerConfig,
                            TrainConfig)


def get_config() -> TrainConfig:
    return TrainConfig(
        model=ModelConfig(
            image=ImageTowerConfig(
                variant="B0",
                width_coefficient=0.25,  # shrunk for 2 CPU cores (paper: B7 / L2 at full width)
                depth_coefficient=0.25,
                resize_px=72,  # paper 4.1 uses 346 -> 289; same 289/346 ratio (~0.84) kept roughly
                crop_px=64,
                projection_dim=128,  # paper 6.1 projects non-B7 towers to a common size; ours: 128
                drop_connect_rate=0.0,  # small-scale departure
            ),
            # paper: 64 tokens and [CLS] pooling; mean pooling is a small-scale departure
            text=TextTowerConfig(size="tiny", max_tokens=32, dropout_rate=0.1, pooling="mean"),
            temperature_init=0.07,  # small-scale departure (paper 4.1: 1.0)
        ),
        optim=OptimConfig(
            optimizer="adamw",  # small-scale departure (paper 4.1: LAMB)
            peak_learning_rate=1e-3,
            warmup_steps=30,  # paper: 10k of 1.2M; ours: 10% of a short run
            total_steps=300,
            weight_decay=1e-5,  # paper 4.1
        ),
        global_batch_size=32,
        label_smoothing=0.1,  # paper 4.1
        mixed_precision="float32",
        shuffle_buffer=1_000,
        cycle_length=4,
        checkpoint_every_steps=50,
        keep_checkpoints=2,
        log_every_steps=10,
    )
