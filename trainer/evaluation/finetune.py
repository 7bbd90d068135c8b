"""Fine-tuning for retrieval (paper 5.1), written as a new WORKDIR with its own export.

    align-eval finetune --model BASE_WORKDIR/export --data 'flickr_train-*.tfrecord' \
        --workdir NEW_WORKDIR --recipe flickr30k \
        [--steps N] [--global_batch_size B] [--peak_learning_rate LR] [--warmup_steps W]

Defaults are the paper's fine-tuning recipe (section 5.1, "Image-Text Matching & Retrieval"): the
same contrastive loss as pre-training; the global batch reduced from 16384 to 2048 (a batch
comparable to the fine-tuning set's size gives false negatives); the learning rate reduced to 1e-5
with linear decay; 3K steps on Flickr30K and 6K on MSCOCO (`--recipe flickr30k|mscoco` sets
`--steps` when it is not given); all other hyper-parameters as in pre-training. The paper mentions
no warm-up for fine-tuning, so the default is none: the first step uses 1e-5 and the rate decays
linearly to zero at the last step. Explicit flags override these defaults; the paper's batch of
2048 applies even when the base run used a smaller one (e.g. a tiny CPU run): the values used and
where each came from are printed and written to NEW_WORKDIR/finetune.json.

The base run's configuration (BASE_WORKDIR/config.json) and vocabulary are reused; the model is
initialised from the base run's latest checkpoint with a fresh optimizer at step 0, then
trainer/train_loop.py trains it (same loss, optimizer, checkpoints and resume) and exports
NEW_WORKDIR/export. Re-running the same command resumes the fine-tuning run.
"""
import json

from trainer.evaluation import files

# Paper 5.1: fine-tuning hyper-parameters for image-text retrieval.
PAPER_GLOBAL_BATCH_SIZE = 2048  # "reduce the global batch size from 16384 to 2048"
PAPER_PEAK_LEARNING_RATE = 1e-5  # "reduce the initial learning rate to 1e-5" (linear decay)
PAPER_WARMUP_STEPS = 0  # the paper mentions no warm-up for fine-tuning
RECIPE_STEPS = {"flickr30k": 3_000, "mscoco": 6_000}  # "3K and 6K steps ... on Flickr30K and MSCOCO"


def resolve_steps(steps=None, recipe=None) -> int:
    """--steps if given, else the paper's step count for --recipe (paper 5.1)."""
    if steps is not None:
        return int(steps)
    if recipe is None:
        raise ValueError(f"give --steps or --recipe ({'|'.join(RECIPE_STEPS)}: the paper's "
                         f"{' / '.join(str(v) for v in RECIPE_STEPS.values())} steps)")
    if recipe not in RECIPE_STEPS:
        raise ValueError(f"unknown --recipe {recipe!r}; choose one of {sorted(RECIPE_STEPS)}")
    return RECIPE_STEPS[recipe]


def base_workdir_of(export_dir: str) -> str:
    workdir = files.dirname(files.absolute(export_dir.rstrip("/")))  # gs:// stays gs://
    if not files.exists(files.join(workdir, "config.json")):
        raise ValueError(f"{workdir} has no config.json: --model must be the export/ of an align-train WORKDIR")
    return workdir


def finetune_config(base_cfg, steps: int, global_batch_size=None, peak_learning_rate=None,
                    warmup_steps=None):
    """The base TrainConfig with the fine-tuning schedule (a copy; the base is not modified).

    Unset values take the paper's 5.1 recipe: global batch 2048, learning rate 1e-5 decayed
    linearly to zero at `steps`, no warm-up. Everything else is the base run's.
    """
    import copy

    warmup = PAPER_WARMUP_STEPS if warmup_steps is None else int(warmup_steps)
    if steps < 1:
        raise ValueError(f"--steps {steps}: fine-tuning needs at least 1 step")
    if not 0 <= warmup < steps:
        raise ValueError(f"--warmup_steps {warmup} must be >= 0 and below --steps {steps}")
    cfg = copy.deepcopy(base_cfg)
    cfg.global_batch_size = int(global_batch_size or PAPER_GLOBAL_BATCH_SIZE)
    cfg.optim.peak_learning_rate = float(peak_learning_rate or PAPER_PEAK_LEARNING_RATE)
    cfg.optim.total_steps = int(steps)
    cfg.optim.warmup_steps = warmup
    cfg.checkpoint_every_steps = min(cfg.checkpoint_every_steps, steps)
    cfg.log_every_steps = min(cfg.log_every_steps, steps)
    return cfg


def describe_choices(base_cfg, cfg, args) -> dict:
    """Where each fine-tuning value came from (printed and saved with the result)."""
    recipe = getattr(args, "recipe", None)
    return {
        "global_batch_size": "--global_batch_size" if args.global_batch_size else
        f"paper 5.1 default (the base run used {base_cfg.global_batch_size})",
        "peak_learning_rate": "--peak_learning_rate" if args.peak_learning_rate else
        f"paper 5.1 default (the base run used {base_cfg.optim.peak_learning_rate:g})",
        "steps": "--steps" if args.steps is not None else f"paper 5.1 --recipe {recipe}",
        "warmup_steps": "--warmup_steps" if getattr(args, "warmup_steps", None) is not None else
        "paper 5.1 default (no warm-up)",
        "schedule": f"linear decay from {cfg.optim.peak_learning_rate:g} to 0 at step {cfg.optim.total_steps}"
        + (f" after {cfg.optim.warmup_steps} warm-up steps" if cfg.optim.warmup_steps else ""),
    }


def initialise_from_base(cfg, base_workdir: str, vocab_path: str, new_workdir: str) -> str:
    """Writes NEW_WORKDIR/checkpoints/ckpt-0: the base model's weights, a fresh optimizer, step 0."""
    import tensorflow as tf

    from trainer import input_pipeline
    from trainer.model import build_dual_encoder
    from trainer.optimizer import build_optimizer

    base_checkpoint = tf.train.latest_checkpoint(files.join(base_workdir, "checkpoints"))
    if base_checkpoint is None:
        raise ValueError(f"no checkpoint in {base_workdir}/checkpoints to fine-tune from")
    model = build_dual_encoder(cfg.model, len(input_pipeline.read_vocab(vocab_path)))
    tf.train.Checkpoint(model=model).restore(base_checkpoint).expect_partial().assert_existing_objects_matched()
    optimizer = build_optimizer(cfg.optim, model)
    optimizer.build(model.trainable_variables)
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step)
    manager = tf.train.CheckpointManager(checkpoint, files.join(new_workdir, "checkpoints"), 2, step_counter=step)
    return manager.save(checkpoint_number=0)


def run_finetune(args) -> dict:
    """align-eval finetune: see the module docstring. Returns the last logged training metrics."""
    import tensorflow as tf

    from trainer import train_loop
    from trainer.config_overrides import config_from_dict

    base = base_workdir_of(args.model)
    saved = json.loads(files.read_text(files.join(base, "config.json")))
    base_cfg = config_from_dict(saved["config"])
    steps = resolve_steps(args.steps, getattr(args, "recipe", None))
    cfg = finetune_config(base_cfg, steps, args.global_batch_size, args.peak_learning_rate,
                          getattr(args, "warmup_steps", None))
    sources = describe_choices(base_cfg, cfg, args)
    print(f"align-eval finetune: global batch {cfg.global_batch_size} ({sources['global_batch_size']}), "
          f"peak learning rate {cfg.optim.peak_learning_rate:g} ({sources['peak_learning_rate']}), "
          f"{cfg.optim.total_steps} steps ({sources['steps']}), {cfg.optim.warmup_steps} warm-up steps "
          f"({sources['warmup_steps']}); {sources['schedule']}", flush=True)
    if tf.train.latest_checkpoint(files.join(args.workdir, "checkpoints")) is None:
        initialise_from_base(cfg, base, saved["vocab"], args.workdir)
    metrics = train_loop.train(cfg, data_glob=args.data, vocab_path=saved["vocab"], workdir=args.workdir,
                               config_name=f"{saved['config_name']}_finetune",
                               print_fn=lambda line: print(line, flush=True))
    return {
        "base_workdir": base,
        "export": files.join(args.workdir, "export"),
        "recipe": getattr(args, "recipe", None),
        "global_batch_size": cfg.global_batch_size,
        "peak_learning_rate": cfg.optim.peak_learning_rate,
        "steps": cfg.optim.total_steps,
        "warmup_steps": cfg.optim.warmup_steps,
        "sources": sources,
        "last_metrics": {k: float(v) for k, v in metrics.items()},
    }
