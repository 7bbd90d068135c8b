"""`align-train`: train an ALIGN dual encoder on curated TFRecords (thin entry point).

    align-train --config tiny_cpu --data 'OUT/tfrecords/train-*.tfrecord' --vocab OUT/vocab.txt \
        --workdir /tmp/align_tiny [--steps N] [--global_batch_size B] [--strategy auto|tpu|multi_worker|mirrored|one_device] \
        [--tpu NAME] [--eval_data 'HELDOUT/*.tfrecord' --eval_every_steps N] [--skip_corrupt_records] [--set optim.peak_learning_rate=5e-4 --set model.image.crop_px=96 ...]

Re-running the same command continues from the latest checkpoint in --workdir. The configs are in
trainer/configs/ (tiny_cpu, b3_bert_mini, b7_bert_base, l2_bert_large); docs/TRAINING.md explains
them, the strategies and the outputs.
"""
import argparse
import logging
import sys
from typing import List, Optional

from trainer import configs
from trainer.config_overrides import apply_overrides
from trainer.strategy import STRATEGY_KINDS



def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="align-train", description=__doc__.split("\n")[0])
    p.add_argument("--config", required=True, choices=configs.available(),
                   help="experiment in trainer/configs/")
    p.add_argument("--data", required=True, help="glob of curated TFRecord shards (local or gs://)")
    p.add_argument("--vocab", required=True, help="vocab.txt written by align-curate")
    p.add_argument("--workdir", required=True, help="checkpoints, TensorBoard logs and export")
    p.add_argument("--steps", type=int, default=None,
                   help="override optim.total_steps (the schedule decays to zero there)")
    p.add_argument("--global_batch_size", type=int, default=None,
                   help="override the global batch (split evenly over replicas)")
    p.add_argument("--strategy", choices=STRATEGY_KINDS, default="auto",
                   help="auto: TPU with --tpu, multi-worker with TF_CONFIG, mirrored with >1 GPU")
    p.add_argument("--tpu", default=None, help="Cloud TPU name or grpc:// address")
    p.add_argument("--mixed_precision", choices=("auto", "float32", "bfloat16"), default=None)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config field, e.g. optim.warmup_steps=500 (repeatable)")
    p.add_argument("--eval_data", default=None,
                   help="glob of held-out TFRecords scored during training (recall, loss, embedding "
                        "health; trainer/in_loop_eval.py)")
    p.add_argument("--eval_every_steps", type=int, default=None,
                   help="evaluate --eval_data every N steps (default: the config's; 0: only at the end)")
    p.add_argument("--skip_corrupt_records", action="store_true",
                   help="skip and count corrupt TFRecords, malformed Examples and undecodable "
                        "images (default: stop with an error naming the file)")
    p.add_argument("--no_export", action="store_true", help="skip the SavedModel export at the end")
    return p


def resolve_config(args: argparse.Namespace):
    """The named config with --steps, --global_batch_size, --mixed_precision,
    --skip_corrupt_records, then --set applied."""
    cfg = configs.get(args.config)
    if args.steps is not None:
        cfg.optim.total_steps = args.steps
    if args.global_batch_size is not None:
        cfg.global_batch_size = args.global_batch_size
    if args.mixed_precision is not None:
        cfg.mixed_precision = args.mixed_precision
    if args.eval_every_steps is not None:
        cfg.eval_every_steps = args.eval_every_steps
    if args.skip_corrupt_records:
        cfg.skip_corrupt_records = True
    apply_overrides(cfg, args.set)
    optim = cfg.optim
    if optim.warmup_steps >= optim.total_steps:
        warmup = optim.total_steps // 10  # 0 (no warm-up) below 10 steps
        logging.warning("warmup_steps %d does not fit in %d steps: using %d (set "
                        "optim.warmup_steps to choose)", optim.warmup_steps, optim.total_steps, warmup)
        optim.warmup_steps = warmup
    return cfg


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    cfg = resolve_config(args)
    from trainer import train_loop  # noqa: late import: --help stays fast
    train_loop.train(cfg, data_glob=args.data, vocab_path=args.vocab, workdir=args.workdir,
                     config_name=args.config, strategy_kind=args.strategy, tpu=args.tpu,
                     export=not args.no_export, eval_data_glob=args.eval_data,
                     print_fn=lambda line: print(line, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
