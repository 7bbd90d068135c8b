"""Evaluation of an exported ALIGN model: the paper's transfer tasks (Jia et al. 2021, sections 5-6).

Metrics are plain numpy functions (`metrics.py`, `prompts.py`, `linear_probe.py`); readers of the
evaluation datasets are in `datasets.py`; the exported SavedModel is wrapped by `exported_model.py`;
`tasks.py` ties them together and `cli.py` is the `align-eval` entry point.
"""
