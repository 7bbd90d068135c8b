"""One raw pair -> an error, a locally dropped pair, or a candidate record (plain functions).

Checks run in this order, the first failure decides (so each pair has exactly one outcome):
1. reader errors (unreadable file, image path not found, remote URL not downloaded);
2. missing fields: `missing_image`, `missing_text`; a raw text over `max_caption_bytes`:
   `caption_too_long` (checked before decoding, so it is never decoded or normalized); text that
   is not UTF-8: `invalid_utf8_text`;
3. the image header: `empty_image`, `not_an_image`, `decompression_bomb` (pixel cap);
4. the *local* filters, on the pair alone, WITHOUT decoding pixels: the paper's image filters on
   the header size (`image_too_small`, `aspect_ratio`), then the word count of the pair's own
   normalized text (`too_few_words`, `too_many_words`). These come first in reasons.DROP_ORDER, so
   such a pair's reason is already final: it is never decoded, scored or joined;
5. decoding + re-encoding the survivors (the candidates): `truncated_image`, `undecodable_image`.
Empty, whitespace-only and over-long texts (up to `max_caption_bytes`) are not errors: they
normalize to texts with too few or too many unigrams and are dropped by the word-count filter
(`too_few_words`, `too_many_words`).
"""
from typing import Optional

from pipeline import image_filters, readers
from schemas import image_decode as image_io
from pipeline.text_filters import filter_word_count
from pipeline.text_normalize import normalize_text, unigrams

MISSING_IMAGE = "missing_image"
MISSING_TEXT = "missing_text"
INVALID_UTF8_TEXT = "invalid_utf8_text"
# Not a paper filter but a protection: a caption of megabytes would cost a worker its decoding and
# normalization (and memory) for nothing, since paper 3's 20-unigram cap drops long texts anyway.
CAPTION_TOO_LONG = "caption_too_long"
DUPLICATE_KEY = "duplicate_key"  # a second candidate pair with a key already seen
ERRORS = readers.READER_ERRORS + (MISSING_IMAGE, MISSING_TEXT, INVALID_UTF8_TEXT,
                                  CAPTION_TOO_LONG) + image_io.IMAGE_ERRORS + (DUPLICATE_KEY,)
ERROR_RAW_TEXT_CHARS = 200  # what an error record keeps of a caption_too_long text (for the report)

ERROR, DROPPED_LOCALLY, CANDIDATE = "error", "dropped_locally", "candidate"


def _decode_text(text) -> Optional[str]:
    if isinstance(text, str):
        return text
    try:
        return bytes(text).decode("utf-8")
    except UnicodeDecodeError:
        return None


def _longer_than(text, max_bytes: int) -> bool:
    """Whether the raw text (bytes, or a str from some readers) is over max_bytes in UTF-8."""
    if not isinstance(text, str):
        return len(text) > max_bytes
    if len(text) > max_bytes:  # a character is 1 to 4 UTF-8 bytes: no need to encode a huge str
        return True
    return 4 * len(text) > max_bytes and len(text.encode("utf-8", "surrogatepass")) > max_bytes


def _text_prefix(text, chars: int) -> str:
    if isinstance(text, str):
        return text[:chars]
    # A character is at most 4 UTF-8 bytes (an invalid byte decodes to one U+FFFD).
    return bytes(text[:4 * chars]).decode("utf-8", "replace")[:chars]


def error_record(raw: dict, error: str, raw_text: str = "") -> dict:
    return {"key": raw["key"], "url": raw.get("url", ""), "raw_text": raw_text, "text": "",
            "status": ERROR, "reason": error}


def inspect_pair(raw: dict, config) -> dict:
    """Steps 1-4 of the module docstring, without decoding pixels: an ERROR or DROPPED_LOCALLY
    record (final), or a CANDIDATE record still to be decoded (`image` holds the source bytes).
    Readable records (DROPPED_LOCALLY, CANDIDATE) carry key, url, raw_text, text, words,
    image_sha256, width, height (header, after EXIF orientation) and unsafe_score."""
    return _inspect(raw, config)[0]


def _inspect(raw: dict, config):
    """(inspect_pair's record, the lazily opened image of a candidate or None)."""
    if raw.get("read_error"):
        return error_record(raw, raw["read_error"]), None
    if raw.get("image") is None:
        return error_record(raw, MISSING_IMAGE), None
    if raw.get("text") is None:
        return error_record(raw, MISSING_TEXT), None
    if _longer_than(raw["text"], config.max_caption_bytes):
        return error_record(raw, CAPTION_TOO_LONG,
                            raw_text=_text_prefix(raw["text"], ERROR_RAW_TEXT_CHARS)), None
    raw_text = _decode_text(raw["text"])
    if raw_text is None:
        return error_record(raw, INVALID_UTF8_TEXT,
                            raw_text=bytes(raw["text"]).decode("utf-8", "replace")), None
    image = bytes(raw["image"])
    opened = image_io.open_image(image, config.max_image_pixels)
    if isinstance(opened, str):
        return error_record(raw, opened, raw_text), None
    header = image_io.header_of(opened)
    text = normalize_text(raw_text)
    record = {
        "key": raw["key"], "url": raw.get("url", ""), "raw_text": raw_text, "text": text,
        "words": len(unigrams(text)), "image_sha256": image_io.sha256_hex(image),
        "width": header.width, "height": header.height, "unsafe_score": raw.get("unsafe_score"),
        "image": image,
    }
    _, image_reason = image_filters.filter_image_size(
        header.width, header.height, config.min_image_side_px, config.max_aspect_ratio)
    _, text_reason = filter_word_count(text, config.min_words, config.max_words)
    local_reason = image_reason or text_reason  # image reasons first (reasons.DROP_ORDER)
    if local_reason is not None:
        return dict(record, status=DROPPED_LOCALLY, reason=local_reason), None
    return dict(record, status=CANDIDATE, reason=None), opened


def parse_pair(raw: dict, config) -> dict:
    """Judges one raw pair (see module docstring). `config` is an options.CurationConfig.

    Returns inspect_pair's record, except that a candidate is decoded and re-encoded: it carries
    the JPEG (`jpeg`, `jpeg_width`, `jpeg_height`, `original_width`, `original_height`,
    `conversions`) instead of the source bytes, or becomes a decoding ERROR. Locally dropped pairs
    keep the source bytes in `image` for the report's thumbnails (only the sampled few are ever
    decoded).
    """
    record, opened = _inspect(raw, config)
    if record["status"] != CANDIDATE:
        return record
    image = record.pop("image")
    encoded = image_io.reencode_image(image, config.stored_shorter_side_px, config.jpeg_quality,
                                      config.max_image_pixels, opened=opened)
    if isinstance(encoded, str):
        return error_record(raw, encoded, record["raw_text"])
    return dict(record, jpeg=encoded.jpeg,
                jpeg_width=encoded.width, jpeg_height=encoded.height,
                original_width=encoded.original_width, original_height=encoded.original_height,
                conversions=list(encoded.conversions))
