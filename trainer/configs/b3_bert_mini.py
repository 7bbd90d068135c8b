"""b3_bert_mini: EfficientNet-B3 + BERT-mini, the ablation-size model (paper section 6.1 trains
EfficientNet B1..L2 against BERT-mini..large; CC3M-scale runs such as COYO-ALIGN's use small
towers like this one).

Paper 6.1: B1, B3, B5 and L2 pooled features go through a linear layer to B7's 640 dimensions, so
that every image tower gives the same embedding size; the [CLS] output of BERT is projected to it
too (paper 4.1). Images at the paper's 346 -> 289 px, 64 tokens. Batch and steps are sized for a
CC3M-scale run on a TPU v3-32 / 8 GPUs (our choice, not a number from the paper); the schedule has
the paper's shape (linear warm-up, then linear decay to zero).

Command (one host; add --tpu NAME on Cloud TPU):

    align-train --config b3_bert_mini --data 'gs://BUCKET/curated/tfrecords/train-*.tfrecord' \
        --vocab gs://BUCKET/curated/vocab.txt --workdir gs://BUCKET/runs/b3_bert_mini
"""
from trainer.config import (ImageTowerConfig, ModelConfig, OptimConfig, TextTowerConfig,
                            TrainConfig)


def get_config() -> TrainConfig:
    return TrainConfig(
        model=ModelConfig(
            image=ImageTowerConfig(variant="B3", resize_px=346, crop_px=289,  # paper 4.1
                                   projection_dim=640),  # paper 6.1: match B7's 640
            text=TextTowerConfig(size="mini", max_tokens=64),  # paper 4.1: 64 tokens
            temperature_init=1.0,  # paper 4.1
        ),
        optim=OptimConfig(
            peak_learning_rate=1e-3,  # paper 4.1
            warmup_steps=10_000,  # paper 4.1
            total_steps=200_000,  # our choice for CC3M-scale data (~270 epochs of 3M at 4096)
            weight_decay=1e-5,  # paper 4.1
        ),
        global_batch_size=4_096,  # our choice for an ablation-size run
        label_smoothing=0.1,  # paper 4.1
        mixed_precision="auto",  # bfloat16 on TPU/GPU
        checkpoint_every_steps=2_000,
        log_every_steps=100,
    )
