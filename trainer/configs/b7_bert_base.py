"""b7_bert_base: EfficientNet-B7 + BERT-base, the paper's main ablation backbone pair (section 6.1).

B7's globally pooled last-block features (640 dimensions, no head 1x1 conv, paper 4.1) are the
image embedding; the BERT [CLS] output is projected linearly to 640 (paper 4.1). 346 -> 289 px
images, 64 tokens, LAMB with the paper's settings and batch; steps reduced to 1M for an
ablation-scale run (the paper's full run is l2_bert_large).

Command (Cloud TPU, e.g. a v3-256 / v4-128 slice):

    align-train --config b7_bert_base --tpu MY_TPU \
        --data 'gs://BUCKET/curated/tfrecords/train-*.tfrecord' \
        --vocab gs://BUCKET/curated/vocab.txt --workdir gs://BUCKET/runs/b7_bert_base
"""
from trainer.config import (ImageTowerConfig, ModelConfig, OptimConfig, TextTowerConfig,
                            TrainConfig)


def get_config() -> TrainConfig:
    return TrainConfig(
        model=ModelConfig(
            image=ImageTowerConfig(variant="B7", resize_px=346, crop_px=289,  # paper 4.1
                                   projection_dim=None),  # paper 6.1: B7 needs none (640)
            text=TextTowerConfig(size="base", max_tokens=64),  # paper 4.1
            temperature_init=1.0,  # paper 4.1
        ),
        optim=OptimConfig(
            peak_learning_rate=1e-3,  # paper 4.1
            warmup_steps=10_000,  # paper 4.1
            total_steps=1_000_000,  # our choice: ablation scale (paper's main run: 1.2M)
            weight_decay=1e-5,  # paper 4.1
        ),
        global_batch_size=16_384,  # paper 4.1
        label_smoothing=0.1,  # paper 4.1
        mixed_precision="auto",
        checkpoint_every_steps=5_000,
        log_every_steps=100,
    )
