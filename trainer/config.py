"""Configuration dataclasses of the trainer. Experiments live in trainer/configs/<name>.py.

Defaults are the paper's (Jia et al. 2021, sections 4.1 and 5): EfficientNet + BERT, 289 px random
crops of 346 px resized images, 64 text tokens, temperature initialised at 1.0, label smoothing 0.1,
LAMB with weight decay 1e-5, peak learning rate 1e-3, 10k warm-up steps, linear decay to zero,
global batch 16384, 1.2M steps. Units are in the field names.
"""
import dataclasses
from typing import Optional


@dataclasses.dataclass
class ImageTowerConfig:
    variant: str = "B7"  # EfficientNet B0..B7 (keras.applications, weights=None); "L2" documented
    width_coefficient: Optional[float] = None  # override of the variant's width (tiny CPU runs)
    depth_coefficient: Optional[float] = None  # override of the variant's depth
    resize_px: int = 346  # paper 4.1: images resized to 346x346 ...
    crop_px: int = 289  # ... then randomly cropped to 289x289 (train), centrally cropped (eval)
    projection_dim: Optional[int] = None  # paper: none on the image side (pooled features are the embedding)
    drop_connect_rate: float = 0.2  # stochastic depth of EfficientNet's blocks (Tan & Le 2019 default)
    sync_batch_norm: bool = False  # batch statistics over all replicas (exact multi-replica equivalence)
    # Moving-average momentum of every BatchNorm's inference statistics. 0.99 is EfficientNet's
    # (Tan & Le 2019, keras.applications); statistics then average over the last ~100 steps of
    # changing weights, too slow for runs of a few hundred steps (docs/TRAINING.md, "BatchNorm").
    batch_norm_momentum: float = 0.99
    # A Keras weights file (`.weights.h5`, e.g. keras.applications.EfficientNetB0(weights="imagenet")
    # .save_weights(PATH)) loaded into the EfficientNet before training; it must be of the same
    # variant/width/depth. None: trained from scratch (docs/TRAINING.md, "Starting from pretrained
    # weights"). Read again whenever the model is rebuilt (resume, export): keep it in place.
    init_weights: Optional[str] = None


@dataclasses.dataclass
class TextTowerConfig:
    size: str = "base"  # BERT size: tiny, mini, small, medium, base, large (Turc et al. 2019 grid)
    num_layers: Optional[int] = None  # overrides of the size's defaults
    hidden_dim: Optional[int] = None
    num_heads: Optional[int] = None
    intermediate_dim: Optional[int] = None
    max_tokens: int = 64  # paper 4.1: at most 64 tokens, [CLS] first
    dropout_rate: float = 0.1
    # "cls": the [CLS] position of the last layer (paper 4.1). "mean": the mean over the caption's
    # non-padding positions; a small-scale departure: a BERT trained from scratch barely moves its
    # [CLS] output in a few hundred steps (docs/TRAINING.md, "Why the trainer learned slowly").
    pooling: str = "cls"
    # A keras-hub BertBackbone preset DIRECTORY (backbone.save_to_preset(DIR) and
    # tokenizer.save_to_preset(DIR): config.json, model.weights.h5, assets/tokenizer/vocabulary.txt).
    # The architecture and initial weights come from it (size and the dimension overrides above are
    # then ignored; dropout_rate, max_tokens and pooling still apply) and the WordPiece vocabulary
    # is its: pass --vocab DIR (a different --vocab is an error). Nothing is downloaded.
    preset: Optional[str] = None


@dataclasses.dataclass
class ModelConfig:
    image: ImageTowerConfig = dataclasses.field(default_factory=ImageTowerConfig)
    text: TextTowerConfig = dataclasses.field(default_factory=TextTowerConfig)
    temperature_init: float = 1.0  # paper 4.1: learnable, initialised at 1.0, shared by both directions


@dataclasses.dataclass
class OptimConfig:
    # "lamb": the paper's (4.1). "adamw": decoupled weight decay Adam (Loshchilov & Hutter 2019),
    # CLIP's and open_clip's optimizer; same excluded variables (no decay on the temperature,
    # biases and normalization parameters).
    optimizer: str = "lamb"
    peak_learning_rate: float = 1e-3  # paper 4.1
    warmup_steps: int = 10_000  # paper 4.1: linear warm-up ...
    total_steps: int = 1_200_000  # ... then linear decay to zero at the last step
    weight_decay: float = 1e-5  # paper 4.1, LAMB
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-6
    grad_clip_norm: Optional[float] = None  # global-norm clipping, off in the paper


@dataclasses.dataclass
class TrainConfig:
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    global_batch_size: int = 16_384  # paper 4.1; split evenly over replicas
    label_smoothing: float = 0.1  # paper 4.1
    mixed_precision: str = "auto"  # "auto": bfloat16 on TPU/GPU, float32 on CPU; or "float32"/"bfloat16"
    shuffle_buffer: int = 10_000  # examples
    cycle_length: int = 16  # shards read in parallel (interleave)
    checkpoint_every_steps: int = 1_000
    keep_checkpoints: int = 3
    log_every_steps: int = 100
    # Precise BatchNorm statistics (trainer/batch_norm_stats.py): training batches whose statistics
    # replace the moving averages before each in-loop evaluation and the final checkpoint/export.
    batch_norm_recalibration_batches: int = 20
    eval_every_steps: int = 0  # in-loop held-out evaluation (--eval_data); 0: only at the last step
    # False: a corrupt TFRecord, malformed Example or undecodable image stops training with an error
    # naming the file; True: such records are skipped and counted (trainer/input_pipeline.py).
    skip_corrupt_records: bool = False
    seed: int = 0
