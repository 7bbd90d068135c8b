"""report.html: one self-contained page to audit a curation run (no JavaScript, no network).

`render_report(stats, samples, near_duplicates)` renders the funnel (input -> errors -> every drop
reason in DROP_ORDER -> kept, with the identity check), the filters table (applied / NOT APPLIED,
thresholds), a chart per histogram, the rare-token, vocabulary and conversion summaries, and for
every reason and error a gallery of sampled pairs with thumbnails and texts; near-duplicates of
evaluation images side by side when given. Every string from the data is HTML-escaped (alt-texts
and URLs are hostile input); images are embedded only as validated base64 JPEG data URIs.

Sample entries: {"key", "url", "text", "raw_text", "thumbnail": data URI or None, "detail"}.
Near-duplicate entries: {"train_key", "eval_key", "cosine", "train_thumbnail", "eval_thumbnail"}.
"""
import json
from typing import Dict, List, Optional

from pipeline import reasons
from pipeline.report_sections import (
    ERROR_COLOR,
    KEPT_COLOR,
    REASON_COLORS,
    esc,
    pct,
    section_filters,
    section_funnel,
    section_histograms,
)
from pipeline.report_style import CSS
from pipeline.thumbnails import is_safe_data_uri, make_thumbnail  # noqa: F401 (public API)

MAX_TEXT_CHARS = 300


def _short(text, limit=MAX_TEXT_CHARS) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= limit else text[:limit] + f"\u2026 (+{len(text) - limit:,} chars)"


def _thumb(uri, alt="") -> str:
    if is_safe_data_uri(uri):
        return f'<img src="{uri}" alt="{esc(alt)}" loading="lazy">'
    return '<div class="noimg">no preview</div>'


def _card(sample: dict) -> str:
    text, raw = sample.get("text", ""), sample.get("raw_text", "")
    shown = esc(_short(text)) if text else '<span class="muted">(empty text)</span>'
    raw_block = ""
    if raw and raw != text:
        raw_block = f'<div class="raw" title="raw alt-text as found in the input">raw: {esc(_short(raw, 160))}</div>'
    return (f'<div class="card">{_thumb(sample.get("thumbnail"), _short(text, 80))}'
            f'<div class="txt">{shown}</div>{raw_block}'
            f'<div class="meta">{esc(sample.get("detail", ""))}</div>'
            f'<div class="meta key" title="{esc(sample.get("url", ""))}">{esc(sample.get("key", ""))}'
            f' \u00b7 {esc(_short(sample.get("url", ""), 60))}</div></div>')


def _gallery(anchor, title, count, total, color, note, badge, samples) -> str:
    shown = samples or []
    head = (f'<h3 id="r-{esc(anchor)}"><i class="dot" style="background:{color}"></i>'
            f'<code>{esc(title)}</code> {badge}<span class="count">{count:,} pairs '
            f'({pct(count, total)})</span></h3>')
    note_html = f'<p class="muted">{esc(note)}</p>' if note else ""
    if count and shown:
        body = (f'<p class="muted small">showing {len(shown):,} of {count:,}</p>'
                f'<div class="cards">{"".join(_card(s) for s in shown)}</div>')
    elif count:
        body = '<p class="muted">no sample was collected for this reason</p>'
    else:
        body = ""
    return f'<div class="gallery{" empty" if not count else ""}">{head}{note_html}{body}</div>'


def _section_galleries(stats, samples) -> str:
    total = int(stats.get("input_pairs", 0))
    filters = stats.get("filters", {})
    dropped, errors = stats.get("dropped", {}), stats.get("errors", {})
    order = list(stats.get("drop_order", reasons.DROP_ORDER))
    order += [r for r in dropped if r not in order]
    parts = ['<section id="dropped"><h2>Dropped pairs, by reason</h2>']
    for reason in order:
        f = filters.get(reason, {})
        badge = '<span class="badge na">NOT APPLIED</span>' if f.get("applied") is False else ""
        parts.append(_gallery(reason, reason, int(dropped.get(reason, 0)), total,
                              REASON_COLORS.get(reason, "#999"), f.get("note", ""), badge,
                              samples.get(reason)))
    parts.append("</section>")
    parts.append('<section id="errors"><h2>Errors (unreadable input)</h2>')
    seen = [e for e in errors if errors[e]]
    for name in seen:
        parts.append(_gallery(name, name, int(errors[name]), total, ERROR_COLOR, "", "", samples.get(name)))
    zero = [e for e in errors if not errors[e]]
    if not seen:
        parts.append('<p class="ok">\u2713 no unreadable pair</p>')
    if zero:
        parts.append('<p class="muted small">0 pairs: ' + ", ".join(f"<code>{esc(e)}</code>" for e in zero) + "</p>")
    parts.append("</section>")
    others = [name for name in samples if name not in order and name not in errors]
    for name in others:  # e.g. "kept": a sample of what the trainer will see
        color = KEPT_COLOR if name == "kept" else "#999"
        count = int(stats.get("kept_pairs", 0)) if name == "kept" else len(samples[name])
        parts.append(f'<section id="s-{esc(name)}"><h2>Sample: {esc(name)}</h2>'
                     + _gallery(name, name, count, total, color, "", "", samples[name]) + "</section>")
    return "".join(parts)


def _kv_table(rows) -> str:
    return '<table class="kv">' + "".join(
        f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"


def _vocab_value(value) -> str:
    if isinstance(value, bool) or value is None:
        return esc(json.dumps(value))
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, (list, dict)):
        return f"<code>{esc(json.dumps(value, ensure_ascii=False))}</code>"
    return esc(value)


def _vocab_note(vocab: dict) -> str:
    """After the achieved size: the "smaller than requested" badge and why (stats.json's
    vocab.limited_by / limited_by_explanation, pipeline/vocab.py), or the reason it is as asked."""
    requested, achieved = vocab.get("requested"), vocab.get("achieved")
    limited_by, why = vocab.get("limited_by"), vocab.get("limited_by_explanation")
    if limited_by is not None:
        smaller = limited_by != "requested"
    else:  # stats.json written before limited_by existed
        smaller = (isinstance(requested, int) and isinstance(achieved, int)
                   and achieved < 0.95 * requested)
        if smaller and not why:
            why = ("the WordPiece learner found fewer pieces above its frequency threshold in the "
                   "kept texts")
    badge = ' <span class="badge warn">smaller than requested</span>' if smaller else ""
    if not why:
        return badge
    code = f"limited by <code>{esc(limited_by)}</code>: " if limited_by else ""
    return f'{badge} <span class="muted small vocab-why">{code}{esc(why)}</span>'


def _section_summaries(stats) -> str:
    rare = stats.get("rare_tokens", {})
    vocab = stats.get("vocab", {})
    rare_rows = [(k, f"{v:,}" if isinstance(v, int) else esc(v)) for k, v in rare.items()]
    vocab_note = _vocab_note(vocab)
    vocab_rows = [(k, _vocab_value(v) + (vocab_note if k == "achieved" else ""))
                  for k, v in vocab.items() if k != "limited_by_explanation"]
    conv = stats.get("conversions", {})
    conv_rows = [(k, f"{v:,}") for k, v in conv.items() if v] or [("none", "0")]
    return ('<section id="summaries"><h2>Corpus counts, vocabulary, image conversions</h2>'
            '<div class="cols"><div><h3>Rare tokens (unigrams + bigrams)</h3>'
            f'{_kv_table(rare_rows) if rare_rows else "<p class=muted>not in stats.json</p>"}'
            '<p class="muted small">Kept: the tokens with count \u2265 min_count_kept, at most '
            'top_n_tokens of them (ties at the cut-off are all rare).</p></div>'
            f'<div><h3>WordPiece vocabulary</h3>{_kv_table(vocab_rows)}</div>'
            f'<div><h3>Image conversions</h3>{_kv_table(conv_rows)}</div></div></section>')


def _section_near_duplicates(stats, near_duplicates) -> str:
    f = stats.get("filters", {}).get(reasons.NEAR_DUPLICATE_OF_EVAL, {})
    if near_duplicates is None:
        return ('<section id="near-duplicates"><h2>Near-duplicates of evaluation images</h2>'
                f'<p><span class="badge na">NOT APPLIED</span> {esc(f.get("note", "no near-duplicate list was given"))}'
                "</p></section>")
    rows = "".join(
        f'<div class="pair">{_thumb(d.get("train_thumbnail"), "train")}{_thumb(d.get("eval_thumbnail"), "eval")}'
        f'<div class="meta">cosine {esc(_fmt_cosine(d.get("cosine")))}</div><div class="meta key">'
        f'train {esc(d.get("train_key", ""))} \u00b7 eval {esc(d.get("eval_key", ""))}</div></div>'
        for d in near_duplicates)
    return ('<section id="near-duplicates"><h2>Near-duplicates of evaluation images</h2>'
            f'<p class="muted">{len(near_duplicates):,} shown: training image (left), evaluation '
            f'image (right)</p><div class="pairs">{rows}</div></section>')


def _fmt_cosine(value) -> str:
    try:
        return f"{float(value):.4f}"
    except (TypeError, ValueError):
        return str(value)


def render_report(stats: dict, samples: Dict[str, List[dict]],
                  near_duplicates: Optional[List[dict]] = None) -> str:
    """The whole report page (see module docstring)."""
    samples = samples or {}
    config = stats.get("config", {})
    subtitle = " \u00b7 ".join(esc(f"{k}: {config[k]}") for k in ("input", "input_format", "output_dir")
                                if k in config)
    nav = "".join(f'<a href="#{a}">{t}</a>' for a, t in (
        ("funnel", "Funnel"), ("filters", "Filters"), ("histograms", "Histograms"),
        ("summaries", "Counts & vocab"), ("dropped", "Dropped"), ("errors", "Errors"),
        ("near-duplicates", "Near-duplicates"), ("config", "Config")))
    config_json = esc(json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False, default=str))
    body = "".join([
        section_funnel(stats), section_filters(stats), section_histograms(stats),
        _section_summaries(stats), _section_galleries(stats, samples),
        _section_near_duplicates(stats, near_duplicates),
        f'<section id="config"><h2>Run configuration</h2><details><summary>all flags</summary>'
        f"<pre>{config_json}</pre></details></section>",
    ])
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            "<title>ALIGN curation audit</title>"
            f"<style>{CSS}</style></head><body><header><h1>ALIGN curation audit</h1>"
            f'<div class="sub">{subtitle}</div><nav>{nav}</nav></header><main>{body}</main>'
            '<footer>Filters of Jia et al. 2021 (ALIGN), section 3. Generated by align-curate '
            "(pipeline/report.py).</footer></body></html>\n")
