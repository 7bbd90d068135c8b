"""Fine-tuning for retrieval (paper 5.1): the pre-training loss, a smaller batch and learning rate,
written as a new WORKDIR with its own export.

    align-eval finetune --model BASE_WORKDIR/export --data 'flickr_train-*.tfrecord' \
        --workdir NEW_WORKDIR --steps 3000 [--global_batch_size B] [--peak_learning_rate LR]

The base run's configuration (BASE_WORKDIR/config.json) and vocabulary are reused; the model is
initialised from the base run's latest checkpoint with a fresh optimizer at step 0, then
trainer/train_loop.py trains it (same loss, LAMB, warm-up + linear decay, checkpoints and resume)
and exports NEW_WORKDIR/export. Defaults when not given: batch = base batch / 8 and peak learning
rate = base peak / 10 (the paper gives no single recipe for every size; the ratios are ours).
Re-running the same command resumes the fine-tuning run.
"""
import json
import os

BATCH_DIVISOR = 8  # ours: "smaller batch" (paper 5.1)
LEARNING_RATE_DIVISOR = 10  # ours: "smaller learning rate" (paper 5.1)
WARMUP_FRACTION = 0.1  # ours: warm-up over the first 10% of the fine-tuning steps


def base_workdir_of(export_dir: str) -> str:
    workdir = os.path.dirname(os.path.abspath(export_dir.rstrip("/")))
    if not os.path.exists(os.path.join(workdir, "config.json")):
        raise ValueError(f"{workdir} has no config.json: --model must be the export/ of an align-train WORKDIR")
    return workdir


def finetune_config(base_cfg, steps: int, global_batch_size=None, peak_learning_rate=None):
    """The base TrainConfig with the fine-tuning schedule (a copy; the base is not modified)."""
    import copy

    if steps < 2:
        raise ValueError(f"--steps {steps}: fine-tuning needs at least 2 steps (1 warm-up step, then decay)")
    cfg = copy.deepcopy(base_cfg)
    cfg.global_batch_size = global_batch_size or max(1, base_cfg.global_batch_size // BATCH_DIVISOR)
    cfg.optim.peak_learning_rate = peak_learning_rate or base_cfg.optim.peak_learning_rate / LEARNING_RATE_DIVISOR
    cfg.optim.total_steps = steps
    cfg.optim.warmup_steps = max(1, int(steps * WARMUP_FRACTION))
    cfg.checkpoint_every_steps = min(cfg.checkpoint_every_steps, steps)
    cfg.log_every_steps = min(cfg.log_every_steps, steps)
    return cfg


def initialise_from_base(cfg, base_workdir: str, vocab_path: str, new_workdir: str) -> str:
    """Writes NEW_WORKDIR/checkpoints/ckpt-0: the base model's weights, a fresh optimizer, step 0."""
    import tensorflow as tf

    from trainer import input_pipeline
    from trainer.model import build_dual_encoder
    from trainer.optimizer import build_optimizer

    base_checkpoint = tf.train.latest_checkpoint(os.path.join(base_workdir, "checkpoints"))
    if base_checkpoint is None:
        raise ValueError(f"no checkpoint in {base_workdir}/checkpoints to fine-tune from")
    model = build_dual_encoder(cfg.model, len(input_pipeline.read_vocab(vocab_path)))
    tf.train.Checkpoint(model=model).restore(base_checkpoint).expect_partial().assert_existing_objects_matched()
    optimizer = build_optimizer(cfg.optim, model)
    optimizer.build(model.trainable_variables)
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step)
    manager = tf.train.CheckpointManager(checkpoint, os.path.join(new_workdir, "checkpoints"), 2, step_counter=step)
    return manager.save(checkpoint_number=0)


def run_finetune(args) -> dict:
    """align-eval finetune: see the module docstring. Returns the last logged training metrics."""
    import tensorflow as tf

    from trainer import train_loop
    from trainer.config_overrides import config_from_dict

    base = base_workdir_of(args.model)
    with open(os.path.join(base, "config.json")) as f:
        saved = json.load(f)
    cfg = finetune_config(config_from_dict(saved["config"]), args.steps, args.global_batch_size,
                          args.peak_learning_rate)
    if tf.train.latest_checkpoint(os.path.join(args.workdir, "checkpoints")) is None:
        initialise_from_base(cfg, base, saved["vocab"], args.workdir)
    metrics = train_loop.train(cfg, data_glob=args.data, vocab_path=saved["vocab"], workdir=args.workdir,
                               config_name=f"{saved['config_name']}_finetune",
                               print_fn=lambda line: print(line, flush=True))
    return {
        "base_workdir": base,
        "export": os.path.join(args.workdir, "export"),
        "global_batch_size": cfg.global_batch_size,
        "peak_learning_rate": cfg.optim.peak_learning_rate,
        "steps": cfg.optim.total_steps,
        "last_metrics": {k: float(v) for k, v in metrics.items()},
    }
