"""parse_pair: every bad input lands in one named error, drop reason or conversion."""
import dataclasses

import pytest

from pipeline import readers, reasons, records
from schemas import image_decode as image_io
from pipeline.options import CurationConfig
from tests.pipeline import image_factory as f

CONFIG = CurationConfig()
GOOD_TEXT = "a red bus on a street".encode()


def pair(image=None, text=GOOD_TEXT, **extra):
    return readers.raw_pair("k1", "http://x/1.png", text, image, **extra)


def parse(image=None, text=GOOD_TEXT, **extra):
    return records.parse_pair(pair(image, text, **extra), CONFIG)


@pytest.mark.parametrize("raw, error", [
    (pair(f.rgb(300, 300), read_error=readers.IMAGE_NOT_FOUND), readers.IMAGE_NOT_FOUND),
    (pair(None), records.MISSING_IMAGE),
    (pair(f.rgb(300, 300), text=None), records.MISSING_TEXT),
    (pair(None, text=None), records.MISSING_IMAGE),
    (pair(f.rgb(300, 300), text=b"caf\xe9 au lait here"), records.INVALID_UTF8_TEXT),
    (pair(b""), image_io.EMPTY_IMAGE),
    (pair(b"GIF87a? no, plain text"), image_io.NOT_AN_IMAGE),
    (pair(f.bomb_png_header()), image_io.DECOMPRESSION_BOMB),
    (pair(f.truncated(f.noisy_png(300, 300))), image_io.TRUNCATED_IMAGE),
])
def test_errors_are_named(raw, error):
    record = records.parse_pair(raw, CONFIG)
    assert (record["status"], record["reason"]) == (records.ERROR, error)
    assert error in records.ERRORS


def test_invalid_utf8_keeps_a_readable_raw_text_for_the_report():
    record = parse(f.rgb(300, 300), text=b"caf\xe9")
    assert record["raw_text"] == "caf\ufffd"


MAX = CONFIG.max_caption_bytes


def test_caption_one_byte_over_the_cap_is_an_error_keeping_its_first_200_characters():
    record = parse(f.rgb(300, 300), text=b"x" * (MAX + 1))
    assert record == {"key": "k1", "url": "http://x/1.png", "raw_text": "x" * 200, "text": "",
                      "status": records.ERROR, "reason": records.CAPTION_TOO_LONG}


def test_caption_of_exactly_the_cap_goes_on_to_the_word_count_filter():
    text = ("word " * MAX).encode()[:MAX]
    record = parse(f.rgb(300, 300), text=text)
    assert (record["status"], record["reason"]) == (records.DROPPED_LOCALLY,
                                                    reasons.TOO_MANY_WORDS)
    assert len(record["raw_text"]) == MAX


def test_caption_length_is_checked_before_decoding_and_normalizing(monkeypatch):
    def fail(_):
        raise AssertionError("an over-long caption must not be normalized")
    monkeypatch.setattr(records, "normalize_text", fail)
    record = parse(f.rgb(300, 300), text=b"caf\xe9 " + b"<!--" * MAX)  # invalid UTF-8, too long
    assert record["reason"] == records.CAPTION_TOO_LONG
    assert record["raw_text"] == "caf\ufffd " + "<!--" * 48 + "<!-"


@pytest.mark.parametrize("text, reason", [
    ("\u00e9" * 5, reasons.TOO_FEW_WORDS),  # 10 UTF-8 bytes: at the cap
    ("\u00e9" * 6, records.CAPTION_TOO_LONG),  # 6 characters but 12 bytes: over it
    ("\udcff" * 4, records.CAPTION_TOO_LONG),  # lone surrogates (3 bytes each) do not crash it
    ("x" * 11, records.CAPTION_TOO_LONG),
])
def test_caption_cap_counts_utf8_bytes_of_str_texts(text, reason):
    config = dataclasses.replace(CONFIG, max_caption_bytes=10)
    assert records.parse_pair(pair(f.rgb(300, 300), text=text), config)["reason"] == reason


def test_caption_too_long_is_listed_after_invalid_utf8_text():
    errors = list(records.ERRORS)
    assert errors.index(records.CAPTION_TOO_LONG) == errors.index(records.INVALID_UTF8_TEXT) + 1


def test_small_truncated_image_is_dropped_from_its_header_without_decoding():
    record = parse(f.truncated(f.noisy_png(300, 150)))
    assert (record["status"], record["reason"]) == (records.DROPPED_LOCALLY,
                                                    reasons.IMAGE_TOO_SMALL)


@pytest.mark.parametrize("size, reason", [((200, 400), reasons.IMAGE_TOO_SMALL),
                                          ((201, 603), reasons.ASPECT_RATIO)])
def test_image_filters_on_header_size(size, reason):
    record = parse(f.rgb(*size))
    assert (record["status"], record["reason"]) == (records.DROPPED_LOCALLY, reason)
    assert (record["width"], record["height"]) == size
    assert record["image"] and "jpeg" not in record


def test_candidate_carries_everything_downstream_needs():
    record = parse(f.rgb(1000, 500), text=b"A  red&amp;blue   bus\n")
    assert record["status"] == records.CANDIDATE and record["reason"] is None
    assert record["raw_text"] == "A  red&amp;blue   bus\n"
    assert record["words"] >= 3
    assert (record["jpeg_width"], record["jpeg_height"]) == (692, 346)
    assert (record["original_width"], record["original_height"]) == (1000, 500)
    assert record["image_sha256"] == image_io.sha256_hex(f.rgb(1000, 500))
    assert record["conversions"] == [image_io.RESIZED]


@pytest.mark.parametrize("text, reason", [
    (b"", reasons.TOO_FEW_WORDS),
    (b" \t\n  ", reasons.TOO_FEW_WORDS),
    (b"two words", reasons.TOO_FEW_WORDS),
    (("word " * 2000).encode(), reasons.TOO_MANY_WORDS),  # a 10 kB alt-text
])
def test_empty_whitespace_and_10kb_texts_get_word_count_reasons(text, reason):
    record = parse(f.rgb(300, 300), text=text)
    assert (record["status"], record["reason"]) == (records.DROPPED_LOCALLY, reason)
    assert record["image"] and "jpeg" not in record  # final reason: never decoded


def test_image_reason_comes_before_word_count_reason():
    record = parse(f.rgb(200, 400), text=b"two words")
    assert (record["status"], record["reason"]) == (records.DROPPED_LOCALLY,
                                                    reasons.IMAGE_TOO_SMALL)


def test_truncated_image_with_too_few_words_is_dropped_without_decoding():
    record = parse(f.truncated(f.noisy_png(300, 300)), text=b"two words")
    assert (record["status"], record["reason"]) == (records.DROPPED_LOCALLY,
                                                    reasons.TOO_FEW_WORDS)


@pytest.mark.parametrize("image, conversion", [
    (f.cmyk_jpeg(), image_io.CMYK_TO_RGB),
    (f.gray16_png(), image_io.SIXTEEN_BIT_TO_8BIT),
    (f.palette_alpha_png(), image_io.ALPHA_ON_WHITE),
    (f.exif_rotated_jpeg(), image_io.EXIF_ROTATED),
    (f.animated_gif(), image_io.ANIMATED_FIRST_FRAME),
])
def test_convertible_images_become_candidates_with_their_conversion(image, conversion):
    record = parse(image)
    assert record["status"] == records.CANDIDATE and conversion in record["conversions"]
