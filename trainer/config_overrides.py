"""Command-line overrides of a TrainConfig (`--set optim.peak_learning_rate=5e-4`) and round trips
through the JSON written to WORKDIR/config.json."""
import dataclasses
import typing
from typing import Any, Iterable

from trainer.config import TrainConfig


def _field_type(obj, name: str):
    hints = typing.get_type_hints(type(obj))
    if name not in hints:
        known = ", ".join(f.name for f in dataclasses.fields(obj))
        raise KeyError(f"{type(obj).__name__} has no field {name!r} (fields: {known})")
    return hints[name]


def parse_value(text: str, field_type) -> Any:
    """'1e-3' -> 0.001 for float fields, 'none' -> None for Optional fields, 'true' -> True..."""
    args = [a for a in typing.get_args(field_type) if a is not type(None)]
    optional = type(None) in typing.get_args(field_type)
    if optional and text.lower() in ("none", "null", ""):
        return None
    base = args[0] if optional else field_type
    if base is bool:
        if text.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"not a boolean: {text!r}")
        return text.lower() in ("true", "1")
    if base is int:
        return int(float(text)) if "e" in text.lower() else int(text)
    if base is float:
        return float(text)
    return text


def apply_override(cfg: TrainConfig, assignment: str) -> TrainConfig:
    """Sets one dotted field in place: 'model.image.crop_px=96'."""
    if "=" not in assignment:
        raise ValueError(f"override must be key=value, got {assignment!r}")
    key, text = assignment.split("=", 1)
    *parents, name = key.strip().split(".")
    target = cfg
    for parent in parents:
        _field_type(target, parent)
        target = getattr(target, parent)
    setattr(target, name, parse_value(text.strip(), _field_type(target, name)))
    return cfg


def apply_overrides(cfg: TrainConfig, assignments: Iterable[str]) -> TrainConfig:
    for assignment in assignments:
        apply_override(cfg, assignment)
    return cfg


def config_from_dict(values: dict, cls=TrainConfig):
    """Inverse of dataclasses.asdict for the trainer's nested config dataclasses."""
    kwargs = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name not in values:
            continue
        value = values[f.name]
        if dataclasses.is_dataclass(hints[f.name]) and isinstance(value, dict):
            value = config_from_dict(value, hints[f.name])
        kwargs[f.name] = value
    return cls(**kwargs)
