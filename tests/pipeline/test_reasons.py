import pytest

from pipeline import reasons


def test_first_reason_follows_fixed_order():
    assert reasons.first_reason([reasons.RARE_TOKEN, reasons.ASPECT_RATIO]) == "aspect_ratio"
    # local reasons (header size, own word count) come before corpus-level ones
    assert reasons.first_reason(
        [None, reasons.ALT_TEXT_SHARED, reasons.TOO_MANY_WORDS]) == "too_many_words"
    assert reasons.first_reason([reasons.UNSAFE, reasons.TOO_FEW_WORDS]) == "too_few_words"
    assert reasons.first_reason([reasons.TOO_FEW_WORDS, reasons.ASPECT_RATIO]) == "aspect_ratio"
    assert reasons.first_reason([]) is None
    assert reasons.first_reason([None]) is None


def test_unknown_reason_is_an_error():
    with pytest.raises(ValueError):
        reasons.first_reason(["blurry"])
