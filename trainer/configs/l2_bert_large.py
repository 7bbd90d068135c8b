"""l2_bert_large: the paper's model, EfficientNet-L2 + BERT-large (paper 4.1 and 5).

Paper 4.1: EfficientNet-L2 image tower with global pooling (no 1x1 conv in the classification
head) and no image projection: the embedding is L2's globally pooled last-block feature, 1376
dimensions (round_filters(320, 4.3), trainer/image_tower.py). BERT-large's [CLS] output goes
through "a fully-connected layer with linear activation on top of BERT encoder to match the
dimension from the image tower" (paper 4.1), i.e. linearly to 1376. (Only the backbone ablation of
paper 6.1 adds a linear layer on L2's pooled features, to compare at B7's 640; this is the full
model, not that ablation.) 346 px images, random 289 px crops and flips, at most 64 tokens,
temperature initialised at 1.0, label smoothing 0.1, LAMB with weight decay 1e-5, peak learning
rate 1e-3 after 10k linear warm-up steps then linear decay to zero, batch 16384 (1024 TPUv3
cores, 16 pairs per core) for 1.2M steps (~11 passes over 1.8B pairs).

EfficientNet-L2 is not in keras.applications; it is EfficientNet's builder with width 4.3 and
depth 5.3 (Xie et al. 2020, Noisy Student). See docs/TRAINING.md for what building it costs.

Command (Cloud TPU v3-1024 pod or equivalent):

    align-train --config l2_bert_large --tpu MY_TPU_POD \
        --data 'gs://BUCKET/curated/tfrecords/train-*.tfrecord' \
        --vocab gs://BUCKET/curated/vocab.txt --workdir gs://BUCKET/runs/l2_bert_large
"""
from trainer.config import (ImageTowerConfig, ModelConfig, OptimConfig, TextTowerConfig,
                            TrainConfig)


def get_config() -> TrainConfig:
    return TrainConfig(
        model=ModelConfig(
            image=ImageTowerConfig(
                variant="L2",
                width_coefficient=4.3,  # EfficientNet-L2 (Xie et al. 2020)
                depth_coefficient=5.3,
                resize_px=346,  # paper 4.1
                crop_px=289,  # paper 4.1
                projection_dim=None,  # paper 4.1: pooled L2 features (1376) are the embedding
            ),
            text=TextTowerConfig(size="large", max_tokens=64),  # paper 4.1
            temperature_init=1.0,  # paper 4.1
        ),
        optim=OptimConfig(
            peak_learning_rate=1e-3,  # paper 4.1
            warmup_steps=10_000,  # paper 4.1
            total_steps=1_200_000,  # paper 4.1
            weight_decay=1e-5,  # paper 4.1
        ),
        global_batch_size=16_384,  # paper 4.1
        label_smoothing=0.1,  # paper 4.1
        mixed_precision="auto",  # bfloat16 on TPU
        checkpoint_every_steps=5_000,
        log_every_steps=100,
    )
