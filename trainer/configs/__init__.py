"""Experiments as code: one module per experiment, each with `get_config() -> TrainConfig`.

`get("tiny_cpu")` imports `trainer.configs.tiny_cpu` and returns its config; every module's
docstring gives the exact command that runs it.
"""
import importlib
from typing import List

from trainer.config import TrainConfig

NAMES = ("tiny_cpu", "b0_parity_cpu", "b3_bert_mini", "b7_bert_base", "l2_bert_large")


def available() -> List[str]:
    return list(NAMES)


def get(name: str) -> TrainConfig:
    """The TrainConfig of experiment `name` (a fresh object: callers may mutate it)."""
    if name not in NAMES:
        raise ValueError(f"unknown config {name!r}; available: {', '.join(NAMES)}")
    module = importlib.import_module(f"trainer.configs.{name}")
    return module.get_config()
