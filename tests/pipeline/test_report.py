import base64
import io
import re

import pytest
from PIL import Image

from pipeline import reasons
from pipeline.report import make_thumbnail, render_report
from pipeline.report_charts import bucket_labels, compact, histogram_svg
from pipeline.thumbnails import is_safe_data_uri

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>"\'&'


def _jpeg(size=(300, 200), color=(200, 30, 30), **save):
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="JPEG", **save)
    return out.getvalue()


def _stats(unsafe_applied=False, **overrides):
    dropped = {r: 0 for r in reasons.DROP_ORDER}
    dropped.update({reasons.IMAGE_TOO_SMALL: 5, reasons.ALT_TEXT_SHARED: 2, reasons.TOO_FEW_WORDS: 3})
    stats = {
        "input_pairs": 20, "kept_pairs": 8, "dropped": dropped,
        "errors": {"truncated_image": 2, "not_an_image": 0},
        "conversions": {"cmyk_to_rgb": 1, "exif_rotated": 0},
        "filters": {
            reasons.IMAGE_TOO_SMALL: {"applied": True, "min_image_side_px": 200, "note": "keep > 200 px"},
            reasons.UNSAFE: {"applied": unsafe_applied, "note": "NOT APPLIED: no scorer configured"
                             if not unsafe_applied else "applied to 12 pairs"},
            reasons.NEAR_DUPLICATE_OF_EVAL: {"applied": False, "note": "NOT APPLIED in this run"},
        },
        "rare_tokens": {"distinct_tokens": 40, "min_count_kept": 1, "tokens_kept": 40, "top_n_tokens": 100},
        "vocab": {"requested": 2000, "achieved": 110},
        "histograms": {
            "shorter_side_px": {"edges": [0, 128, 200, 201, 512], "counts": [3, 2, 0, 10, 3]},
            "aspect_ratio": {"edges": [1.0, 2.0, 3.0], "counts": [15, 3, 0]},
            "words_per_text": {"edges": [0, 3, 21], "counts": [3, 14, 1]},
            "alt_texts_per_image": {"edges": [1, 2, 1001], "counts": [18, 0, 0]},
            "images_per_alt_text": {"edges": [1, 2, 11], "counts": [12, 0, 1]},
        },
        "drop_order": list(reasons.DROP_ORDER),
        "config": {"input": "demo_data/webdataset/*.tar", "input_format": "webdataset"},
    }
    stats.update(overrides)
    return stats


def _samples():
    thumb = make_thumbnail(_jpeg())
    return {
        reasons.IMAGE_TOO_SMALL: [{"key": "k1", "url": "javascript:alert(1)", "text": HOSTILE,
                                   "raw_text": HOSTILE + " &amp;", "thumbnail": thumb, "detail": "64x64 px"}],
        reasons.ALT_TEXT_SHARED: [{"key": "k2", "url": "u", "text": "image", "raw_text": "image",
                                   "thumbnail": 'data:image/jpeg;base64,AA" onerror="alert(2)',
                                   "detail": ""}],
        "truncated_image": [{"key": "k3", "url": "u3", "text": "a cat", "raw_text": "a cat",
                             "thumbnail": None, "detail": "error: truncated_image"}],
    }


def test_hostile_alt_texts_urls_and_thumbnails_are_escaped():
    page = render_report(_stats(), _samples())
    assert "<script>" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert 'onerror="alert(2)' not in page  # a malformed data URI is never embedded
    assert 'href="javascript:' not in page
    assert len(re.findall(r'<img src="data:image/jpeg;base64,', page)) == 1
    assert "no preview" in page


def test_unsafe_filter_shown_not_applied_only_when_stats_say_so():
    def unsafe_row(page):
        return re.search(r"<code>unsafe</code></td><td>(.*?)</td>", page).group(1)

    assert "NOT APPLIED" in unsafe_row(render_report(_stats(unsafe_applied=False), {}))
    assert unsafe_row(render_report(_stats(unsafe_applied=True), {})) == \
        '<span class="badge ok">applied</span>'


def test_every_reason_and_error_has_a_section_and_the_funnel_adds_up():
    page = render_report(_stats(), _samples())
    for reason in reasons.DROP_ORDER:
        assert f'id="r-{reason}"' in page
    assert 'id="r-truncated_image"' in page and "showing 1 of 2" in page
    assert "\u2713 input_pairs 20 = kept 8 + dropped 10 + errors 2" in page
    assert "identity broken" in render_report(_stats(kept_pairs=9), {})
    assert page.count('<svg class="chart"') == 5
    assert "NOT APPLIED in this run" in page  # near-duplicates section without a list


def test_histogram_buckets_dropped_by_the_filter_are_red():
    svg = histogram_svg({"edges": [0, 128, 200, 201], "counts": [1, 2, 3, 4]},
                        dropped_bucket=lambda lo, hi: hi is not None and hi - 1 <= 200)
    fills = re.findall(r'fill="(#[0-9a-f]+)"', svg)
    assert fills == ["#d9534f", "#d9534f", "#d9534f", "#4a7fc1"]  # 0-127, 128-199, 200 | >=201
    assert bucket_labels([0, 128, 200, 201], integer=True) == ["0\u2013127", "128\u2013199", "200", "\u2265201"]
    assert bucket_labels([1.0, 2.5, 3.0], integer=False) == ["1\u20132.5", "2.5\u20133", "\u22653"]
    assert compact(1234) == "1.2k" and compact(5_600_000) == "5.6M" and compact(7) == "7"


def test_near_duplicates_side_by_side():
    thumb = make_thumbnail(_jpeg())
    page = render_report(_stats(), {}, near_duplicates=[
        {"train_key": "t<1>", "eval_key": "e1", "cosine": 0.97123, "train_thumbnail": thumb,
         "eval_thumbnail": thumb}])
    assert "cosine 0.9712" in page and "train t&lt;1&gt; \u00b7 eval e1" in page


def _decode(uri):
    assert is_safe_data_uri(uri)
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))


def test_make_thumbnail_sizes_and_formats():
    thumb = _decode(make_thumbnail(_jpeg((400, 100))))
    assert thumb.format == "JPEG" and thumb.size == (128, 32)
    assert _decode(make_thumbnail(_jpeg((40, 30)), max_side_px=128)).size == (40, 30)  # no upscaling
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: displayed as 200x300
    assert _decode(make_thumbnail(_jpeg((300, 200), exif=exif.tobytes()))).size == (85, 128)
    frames = [Image.new("P", (64, 64), i) for i in range(3)]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:])
    assert _decode(make_thumbnail(gif.getvalue())).size == (64, 64)
    png16 = io.BytesIO()
    Image.new("I;16", (50, 50), 40000).save(png16, format="PNG")
    assert _decode(make_thumbnail(png16.getvalue())).mode == "RGB"


@pytest.mark.parametrize("data", [b"", b"not an image", _jpeg()[:40]])
def test_make_thumbnail_undecodable_is_none(data):
    assert make_thumbnail(data) is None


def test_make_thumbnail_refuses_decompression_bombs():
    big = io.BytesIO()
    Image.new("1", (10_000, 6_000)).save(big, format="PNG")  # 60 Mpx > 50 Mpx cap, tiny file
    assert make_thumbnail(big.getvalue()) is None


def _vocab_cell(page):
    return re.search(r"<th>achieved</th><td>(.*?)</td>", page).group(1)


def test_vocab_smaller_than_requested_shows_why_next_to_the_badge():
    why = "every word piece seen at least 10 times fits in 580 entries <b>&</b>"
    vocab = {"requested": 8000, "achieved": 580, "limited_by": "min_piece_count",
             "limited_by_explanation": why, "min_piece_count": 10, "words_counted": 3732,
             "words_at_min_piece_count": 282, "search_steps": [[10, 580]], "final_threshold": 10}
    page = render_report(_stats(vocab=vocab), {})
    cell = _vocab_cell(page)
    assert cell.startswith('580 <span class="badge warn">smaller than requested</span>')
    assert ('<span class="muted small vocab-why">limited by <code>min_piece_count</code>: every '
            'word piece seen at least 10 times fits in 580 entries &lt;b&gt;&amp;&lt;/b&gt;'
            '</span>') in cell
    assert "<b>&</b>" not in page
    assert "<th>limited_by</th><td>min_piece_count</td>" in page
    assert "<th>words_at_min_piece_count</th><td>282</td>" in page
    assert "<th>search_steps</th><td><code>[[10, 580]]</code></td>" in page
    assert "<th>limited_by_explanation</th>" not in page  # shown once, next to the size


def test_vocab_that_meets_the_request_has_no_badge():
    vocab = {"requested": 40, "achieved": 40, "limited_by": "requested",
             "limited_by_explanation": "every word piece seen at least 47 times fits in 40 "
                                       "entries, within 5% of the 40 requested"}
    cell = _vocab_cell(render_report(_stats(vocab=vocab), {}))
    assert "badge" not in cell and "limited by <code>requested</code>: every word piece" in cell


def test_vocab_without_limited_by_keeps_the_generic_badge():  # stats.json of older runs
    cell = _vocab_cell(render_report(_stats(), {}))  # 110 of 2000
    assert '<span class="badge warn">smaller than requested</span>' in cell
    assert "fewer pieces above its frequency threshold" in cell
    cell = _vocab_cell(render_report(_stats(vocab={"requested": 100, "achieved": 99}), {}))
    assert cell == "99"
