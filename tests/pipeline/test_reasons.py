import pytest

from pipeline import reasons


def test_first_reason_follows_fixed_order():
    assert reasons.first_reason([reasons.RARE_TOKEN, reasons.ASPECT_RATIO]) == "aspect_ratio"
    assert reasons.first_reason([None, reasons.TOO_MANY_WORDS, reasons.ALT_TEXT_SHARED]) == "alt_text_shared"
    assert reasons.first_reason([]) is None
    assert reasons.first_reason([None]) is None


def test_unknown_reason_is_an_error():
    with pytest.raises(ValueError):
        reasons.first_reason(["blurry"])
