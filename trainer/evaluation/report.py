"""Writes an evaluation result as JSON and prints it as a readable table."""
import json
from typing import Iterator, Tuple

from trainer.evaluation import files

METRIC_PREFIXES = ("R@", "top", "vote_top", "mean_per_class_top", "spearman")


def flatten(result: dict, prefix: str = "") -> Iterator[Tuple[str, object]]:
    for key, value in result.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from flatten(value, name + " / ")
        else:
            yield name, value


def _cell(name: str, value) -> str:
    leaf = name.rsplit(" / ", 1)[-1]
    if isinstance(value, float) and leaf.startswith(METRIC_PREFIXES) and not leaf.startswith("spearman"):
        return f"{100 * value:6.2f} %"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def format_table(task: str, result: dict) -> str:
    rows = list(flatten(result))
    width = max([len(n) for n, _ in rows] + [len(task)])
    lines = [task, "-" * (width + 12)]
    lines += [f"{name:<{width}}  {_cell(name, value):>9}" for name, value in rows]
    return "\n".join(lines)


def write_json(path: str, payload: dict) -> None:
    """Writes PATH (local, gs://, any file system TensorFlow knows), creating its directory."""
    files.makedirs(files.dirname(files.absolute(path)))
    files.write_text(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")
