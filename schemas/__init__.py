"""The TFRecord contract between curation (pipeline/, dedup/) and training (trainer/)."""
from schemas.example_schema import (  # noqa: F401
    FEATURE_SPEC,
    IMAGE_ENCODED,
    IMAGE_HEIGHT,
    IMAGE_SHA256,
    IMAGE_WIDTH,
    KEY,
    ORIGINAL_HEIGHT,
    ORIGINAL_WIDTH,
    RAW_TEXT,
    TEXT,
    URL,
    make_example,
    parse_example,
    parse_example_dict,
)
