"""Drop and error reasons, and the fixed order that gives each pair exactly one reason.

A pair that several filters would drop is counted once, under the first reason in DROP_ORDER.
The paper (section 3) lists its filters but gives them no order; ours puts the *local* reasons
first, those decided from the pair alone at parse time (its image header's size, then its own
text's word count), and the *corpus-level* reasons after them (counts over the whole raw dataset,
the unsafe scorer, then the near-duplicate removal of evaluation images, Appendix A, last because
it runs on what survives). Within each group image-based reasons precede text-based ones, as in
the paper. Why local first: a pair dropped locally has its final reason before any pixel is
decoded, any scorer runs or any image bytes are shuffled, so decoding, scoring and the join by key
are paid only by pairs that can still be kept (docs/PIPELINE.md).
Errors (unreadable input) come before every drop: a pair that cannot be read is never filtered.
"""

IMAGE_TOO_SMALL = "image_too_small"  # shorter side <= 200 px (paper 3)
ASPECT_RATIO = "aspect_ratio"  # long/short side >= 3 (paper 3)
TOO_MANY_ALT_TEXTS = "too_many_alt_texts"  # image with > 1000 alt-texts (paper 3)
UNSAFE = "unsafe"  # pornographic image (paper 3), only when a scorer is configured
ALT_TEXT_SHARED = "alt_text_shared"  # alt-text shared by > 10 images (paper 3)
TOO_FEW_WORDS = "too_few_words"  # < 3 unigrams (paper 3)
TOO_MANY_WORDS = "too_many_words"  # > 20 unigrams (paper 3)
RARE_TOKEN = "rare_token"  # a unigram/bigram outside the top-N of the raw data (paper 3)
NEAR_DUPLICATE_OF_EVAL = "near_duplicate_of_eval"  # Appendix A

DROP_ORDER = (
    # local: decided in records.parse_pair from the header and the pair's own text
    IMAGE_TOO_SMALL,
    ASPECT_RATIO,
    TOO_FEW_WORDS,
    TOO_MANY_WORDS,
    # corpus-level and model-based: flags joined by key (pipeline/transforms.py)
    TOO_MANY_ALT_TEXTS,
    UNSAFE,
    ALT_TEXT_SHARED,
    RARE_TOKEN,
    NEAR_DUPLICATE_OF_EVAL,
)

_RANK = {reason: rank for rank, reason in enumerate(DROP_ORDER)}


def first_reason(reasons):
    """The reason a pair is dropped for: the earliest of `reasons` in DROP_ORDER (None if none)."""
    reasons = [r for r in reasons if r is not None]
    if not reasons:
        return None
    unknown = [r for r in reasons if r not in _RANK]
    if unknown:
        raise ValueError(f"unknown drop reason(s) {unknown}; known: {DROP_ORDER}")
    return min(reasons, key=_RANK.__getitem__)
