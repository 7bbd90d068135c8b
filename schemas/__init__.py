"""The TFRecord contract between curation (pipeline/, dedup/) and training (trainer/).

The names below come from schemas.example_schema, imported on first use (it imports TensorFlow),
so that `schemas.example_wire` (TF-free serialization, used by curation workers) stays light.
"""
_EXPORTS = (
    "FEATURE_SPEC",
    "IMAGE_ENCODED",
    "IMAGE_HEIGHT",
    "IMAGE_SHA256",
    "IMAGE_WIDTH",
    "KEY",
    "ORIGINAL_HEIGHT",
    "ORIGINAL_WIDTH",
    "RAW_TEXT",
    "TEXT",
    "URL",
    "make_example",
    "parse_example",
    "parse_example_dict",
)
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        from schemas import example_schema

        return getattr(example_schema, name)
    raise AttributeError(f"module 'schemas' has no attribute {name!r}")
