"""tiny_cpu: a real ALIGN run of a few minutes on a 2-core laptop CPU (smoke run, not a result).

Same loss, optimizer, schedule shape and input pipeline as the paper; the towers and images are shrunk
so that a step takes well under a second on 2 cores (EfficientNet-B0 at 289 px trains at ~3.5
images/s there): EfficientNet-B0 with width 0.25 / depth 0.25 at 64 px crops of 72 px images, and
BERT-tiny over at most 32 tokens. The learning-rate schedule keeps the paper's shape (linear
warm-up, then linear decay to zero at the last step) over 300 steps, with a 10x higher peak.

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
            ),
            text=TextTowerConfig(size="tiny", max_tokens=32),  # paper: 64 tokens
            temperature_init=1.0,  # paper 4.1
        ),
        optim=OptimConfig(
            # Our choice, not the paper's 1e-3: LAMB moves each layer by ~lr x its norm per step,
            # so 1e-3 barely moves a 300-step run (measured on the demo sample: loss 6.93 -> 6.92
            # in 300 steps at 1e-3, 6.93 -> 5.80 in 200 steps at 1e-2; docs/TRAINING.md).
            peak_learning_rate=1e-2,
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
