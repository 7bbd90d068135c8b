"""The training loop: distributed input, steps, checkpoints with automatic resume, logs, export.

`train(...)` runs one experiment in WORKDIR:
  WORKDIR/checkpoints/   tf.train.CheckpointManager (model, optimizer, step), every N steps, kept K
  WORKDIR/tensorboard/   scalars: both loss directions, temperature, learning rate, gradient norm,
                         pairs/s, data time and step time; with skip_corrupt_records also
                         input/skipped_corrupt_records and input/skipped_undecodable_images
                         (the progress line and the scalars: trainer/loop_reporting.py)
  WORKDIR/export/        the SavedModel of trainer/export.py, written when the run reaches its end
  WORKDIR/config.json    the resolved configuration of the run

Resume: a run started in a WORKDIR with checkpoints continues from the latest one, whether the
previous process finished, was preempted (SIGTERM: a checkpoint is written at the next step
boundary; on TPU / multi-worker, tf.distribute's PreemptionCheckpointHandler does it) or was killed
(SIGKILL: the steps since the last checkpoint are lost and redone from that checkpoint). The step
counter is part of the checkpoint, so no step is counted twice and a run always ends at
`optim.total_steps`. The tf.data iterator is not checkpointed (its shuffle buffer would be
gigabytes of encoded images); instead the input is reshuffled with a seed derived from the resume
step, so a resumed run does not replay the batches the first run started with.

Bad input (trainer/bad_input.py): by default a corrupt record or undecodable image stops the
run with bad_input.BadInputError naming the file and offset; with cfg.skip_corrupt_records
it is skipped, named in a warning, counted on the progress line, in TensorBoard and in the result.
"""
import dataclasses
import json
import logging
import math
import os
import signal
import time
from typing import Callable, Dict, Optional

import tensorflow as tf

from trainer import bad_input, input_pipeline, loop_reporting as reporting
from trainer.config import TrainConfig


class NonFiniteLossError(FloatingPointError):
    """Training stopped: the loss became NaN or infinite (fail fast, no checkpoint written)."""


@dataclasses.dataclass
class Components:
    """The model side of the trainer (trainer/model.py, optimizer.py, strategy.py, train_step.py)."""
    build_strategy: Callable  # (kind, tpu) -> tf.distribute.Strategy
    set_precision_policy: Callable  # (strategy, mixed_precision) -> None
    build_dual_encoder: Callable  # (model_cfg, vocab_size) -> DualEncoder
    build_optimizer: Callable  # (optim_cfg, model) -> optimizer
    make_train_step: Callable  # (model, optimizer, strategy, cfg) -> step_fn(iterator) -> metrics


def default_components() -> Components:
    from trainer import model, optimizer, strategy, train_step  # noqa: late import keeps tests light
    return Components(strategy.build_strategy, strategy.set_precision_policy,
                      model.build_dual_encoder, optimizer.build_optimizer,
                      train_step.make_train_step)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0
                                             and "chief" not in resolver.cluster_spec().as_dict())


def _worker_dir(workdir: str, strategy, name: str) -> str:
    """Chief writes WORKDIR/name; other workers write a scratch copy (multi-worker convention)."""
    if is_chief(strategy):
        return os.path.join(workdir, name)
    resolver = strategy.cluster_resolver
    return os.path.join(workdir, "workers", f"{resolver.task_type}_{resolver.task_id}", name)


class _StopRequest:
    """SIGTERM / SIGINT -> checkpoint at the next step boundary, then exit (CPU/GPU preemption)."""

    def __init__(self):
        self.requested = False
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        if self.requested:  # a second signal: stop now, without the checkpoint
            raise KeyboardInterrupt(f"signal {signum} received twice")
        logging.warning("signal %d: checkpointing at the next step boundary, then stopping", signum)
        self.requested = True

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _preemption_handler(strategy, manager):
    """tf.distribute's preemption handler where it is supported (TPU, multi-worker), else None."""
    kind = type(strategy).__name__
    if not any(k in kind for k in ("TPUStrategy", "MultiWorkerMirroredStrategy", "Collective")):
        return None
    try:
        return tf.distribute.experimental.PreemptionCheckpointHandler(
            strategy.cluster_resolver, manager)
    except Exception as error:  # noqa: BLE001 - platform without preemption notices
        logging.warning("PreemptionCheckpointHandler unavailable (%s); SIGTERM handling only", error)
        return None


def check_finite(step: int, metrics: Dict[str, float]) -> None:
    """Fail fast on a NaN/inf loss, or a step that reported finite=0 (TPU: no in-graph asserts)."""
    loss = metrics["loss"]
    if not math.isfinite(loss) or metrics.get("finite", 1.0) < 1.0:
        raise NonFiniteLossError(f"non-finite loss {loss} at step {step}: {metrics}")


def _run_step(step_fn, iterator, preemption, step: int) -> Dict[str, float]:
    """One step; its metrics as floats (this waits for the step to finish)."""
    try:
        metrics = preemption.run(step_fn, iterator) if preemption else step_fn(iterator)
        metrics = {k: float(v) for k, v in metrics.items()}
    except tf.errors.InvalidArgumentError as error:  # the step's in-graph finiteness assertion
        if "non-finite" in str(error).lower():
            raise NonFiniteLossError(f"non-finite loss or gradient at step {step}") from error
        raise
    check_finite(step, metrics)
    return metrics


def train(cfg: TrainConfig, *, data_glob: str, vocab_path: str, workdir: str,
          config_name: str = "custom", strategy_kind: str = "auto", tpu: Optional[str] = None,
          export: bool = True, components: Optional[Components] = None,
          print_fn: Callable[[str], None] = print,
          eval_data_glob: Optional[str] = None) -> Dict[str, float]:
    """Trains to cfg.optim.total_steps, resuming from WORKDIR's latest checkpoint; returns the
    last logged metrics plus "step" (and "eval": the last in-loop evaluation, with eval_data_glob:
    every cfg.eval_every_steps steps and at the last step, see trainer/in_loop_eval.py; with
    cfg.skip_corrupt_records "skipped_corrupt_records" and "skipped_undecodable_images")."""
    components = components or default_components()
    strategy = components.build_strategy(strategy_kind, tpu)
    components.set_precision_policy(strategy, cfg.mixed_precision)
    total_steps = cfg.optim.total_steps
    vocab_size = len(input_pipeline.read_vocab(vocab_path))
    tf.io.gfile.makedirs(workdir)
    if is_chief(strategy):
        _write_run_config(workdir, cfg, config_name, data_glob, vocab_path)

    with strategy.scope():
        model = components.build_dual_encoder(cfg.model, vocab_size)
        optimizer = components.build_optimizer(cfg.optim, model)
        optimizer.build(model.trainable_variables)  # slots exist before restore
        step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step_var)
    manager = tf.train.CheckpointManager(
        checkpoint, _worker_dir(workdir, strategy, "checkpoints"), cfg.keep_checkpoints,
        step_counter=step_var)
    start_step = _restore_latest(checkpoint, step_var, workdir, print_fn)
    if start_step > total_steps:
        raise ValueError(f"checkpoint at step {start_step} is past total_steps={total_steps}")

    # On TPU the input runs on the TPU hosts, not next to this client's variable: data time is
    # not measured there (use the TensorBoard profiler's input-pipeline analysis).
    clock = None if isinstance(strategy, tf.distribute.TPUStrategy) else reporting.ArrivalClock()
    skipped = bad_input.SkippedInput()
    # skips(): the counts of the records skipped so far (warning about new ones), {} by default
    skips = skipped.warn_new if cfg.skip_corrupt_records else dict
    dataset = strategy.distribute_datasets_from_function(
        lambda ctx: reporting.stamped(clock, input_pipeline.build_train_dataset(
            ctx, data_glob, vocab_path, cfg, seed=cfg.seed + start_step, skipped=skipped)))
    iterator = iter(dataset)
    step_fn = components.make_train_step(model, optimizer, strategy, cfg)
    writer = tf.summary.create_file_writer(_worker_dir(workdir, strategy, "tensorboard"))
    preemption = _preemption_handler(strategy, manager)
    recalibrate = _batch_norm_recalibration(model, strategy, iterator, cfg, print_fn)
    evaluator = None
    if eval_data_glob:
        from trainer.in_loop_eval import InLoopEvaluator  # noqa: late import
        evaluator = InLoopEvaluator(eval_data_glob, vocab_path, cfg)
    last: Dict[str, float] = {}
    last_eval: Optional[dict] = None
    window, run_start, step = reporting.Window(), time.perf_counter(), start_step

    with _StopRequest() as stop, writer.as_default(), bad_input.naming_bad_input():
        if evaluator and cfg.eval_every_steps and start_step == 0:  # the initial model's health
            recalibrate()
            last_eval = _evaluate(evaluator, model, strategy, 0, print_fn)
        while step < total_steps:
            called_at = time.time()
            metrics = _run_step(step_fn, iterator, preemption, step + 1)
            total_s = time.time() - called_at
            data_s = (min(max(clock.last_arrival() - called_at, 0.0), total_s) if clock
                      else float("nan"))  # not measured
            step = int(step_var.assign_add(1).numpy())
            if step == start_step + 1:  # tracing and compilation: not a step time
                print_fn(f"step {step} (first of this run: tracing and compilation) took {total_s:.1f} s")
            else:
                window.add(metrics, data_s, total_s - (data_s if clock else 0.0))
            if window.count and (step % cfg.log_every_steps == 0 or step == total_steps):
                last = window.log(step, total_steps, cfg.global_batch_size, print_fn, skips())
            if evaluator and ((cfg.eval_every_steps and step % cfg.eval_every_steps == 0)
                              or step == total_steps):
                recalibrate()
                last_eval = _evaluate(evaluator, model, strategy, step, print_fn)
            elif step == total_steps:
                recalibrate()  # before the final checkpoint, which the export is made from
            if step % cfg.checkpoint_every_steps == 0:
                manager.save(checkpoint_number=step)
            if stop.requested:
                _save_final(manager, step)
                print_fn(f"stopped at step {step} on request; checkpoint written")
                return dict(last, step=step, stopped=True, **skips())
    _save_final(manager, step)
    writer.flush()
    print_fn(f"reached step {step}/{total_steps}: {step - start_step} steps in this run, "
             f"{reporting.hms(time.perf_counter() - run_start)}")
    counts = skips()
    if any(counts.values()):
        print_fn(f"skipped {counts['skipped_corrupt_records']} corrupt records and "
                 f"{counts['skipped_undecodable_images']} undecodable images (warnings name them)")
    if export and is_chief(strategy):
        from trainer import export as export_lib  # noqa: late import
        export_dir = os.path.join(workdir, "export")
        export_lib.export_from_checkpoint(cfg, vocab_path=vocab_path, workdir=workdir,
                                          export_dir=export_dir, config_name=config_name,
                                          build_dual_encoder=components.build_dual_encoder)
        print_fn(f"exported SavedModel to {export_dir}")
    return dict(last, step=step, **counts, **({"eval": last_eval} if last_eval else {}))


def _batch_norm_recalibration(model, strategy, iterator, cfg, print_fn) -> Callable[[], None]:
    """recalibrate(): precise BatchNorm statistics from cfg.batch_norm_recalibration_batches
    training batches (trainer/batch_norm_stats.py); a no-op for models without BatchNorm."""
    batches = cfg.batch_norm_recalibration_batches
    image_tower = getattr(model, "image_tower", None)
    if batches <= 0 or image_tower is None:
        return lambda: None
    from trainer.batch_norm_stats import BatchNormRecalibrator  # noqa: late import
    recalibrator = BatchNormRecalibrator(image_tower, strategy)

    def recalibrate():
        started = time.perf_counter()
        layers = recalibrator.recalibrate(iterator, batches)
        if layers:
            print_fn(f"BatchNorm statistics of {layers} layers recomputed from {batches} training "
                     f"batches ({time.perf_counter() - started:.1f} s)")
    return recalibrate


def _evaluate(evaluator, model, strategy, step: int, print_fn) -> dict:
    """One in-loop evaluation: TensorBoard scalars under eval/, the progress line, the result."""
    from trainer.in_loop_eval import flat_metrics, format_eval  # noqa: late import
    started = time.perf_counter()
    result = evaluator.evaluate(model, strategy)
    result["step"], result["seconds"] = step, time.perf_counter() - started
    for name, value in flat_metrics(result).items():
        reporting.write_scalar(f"eval/{name}", value, step)
    print_fn(format_eval(step, result) + f" | {result['seconds']:.1f} s")
    return result


def _write_run_config(workdir, cfg, config_name, data_glob, vocab_path) -> None:
    with tf.io.gfile.GFile(os.path.join(workdir, "config.json"), "w") as f:
        json.dump({"config_name": config_name, "config": dataclasses.asdict(cfg),
                   "data": data_glob, "vocab": vocab_path}, f, indent=2)


def _restore_latest(checkpoint: tf.train.Checkpoint, step_var, workdir: str, print_fn) -> int:
    """Restores the chief's latest checkpoint on every worker (the other workers' copies are
    scratch); returns the step to start from (0 without a checkpoint)."""
    latest = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    if latest:
        checkpoint.restore(latest).assert_existing_objects_matched()
        print_fn(f"resumed from {latest} at step {int(step_var.numpy())}")
    return int(step_var.numpy())


def _save_final(manager: tf.train.CheckpointManager, step: int) -> None:
    """Checkpoint `step` unless it is already the latest checkpoint."""
    latest = manager.latest_checkpoint
    if latest is None or not latest.endswith(f"-{step}"):
        manager.save(checkpoint_number=step, check_interval=False)
