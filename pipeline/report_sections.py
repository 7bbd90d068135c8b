"""Sections of report.html built from stats.json: funnel, filters table, histograms (see report.py).

Every string from the data goes through `esc` (alt-texts and URLs are hostile input).
"""
import html

from pipeline import reasons
from pipeline.report_charts import histogram_svg, stacked_bar

KEPT_COLOR, ERROR_COLOR = "#2e8b57", "#6c757d"
REASON_COLORS = {
    reasons.IMAGE_TOO_SMALL: "#e07b39", reasons.ASPECT_RATIO: "#d4a72c",
    reasons.TOO_MANY_ALT_TEXTS: "#9c6ade", reasons.UNSAFE: "#c2185b",
    reasons.ALT_TEXT_SHARED: "#5b8def", reasons.TOO_FEW_WORDS: "#26a69a",
    reasons.TOO_MANY_WORDS: "#00838f", reasons.RARE_TOKEN: "#8d6e63",
    reasons.NEAR_DUPLICATE_OF_EVAL: "#455a64",
}
# histogram name -> (title, integer buckets, log scale)
HISTOGRAMS = {
    "shorter_side_px": ("Shorter side (px)", True, False),
    "aspect_ratio": ("Aspect ratio (longer / shorter side)", False, False),
    "words_per_text": ("Unigrams per alt-text", True, False),
    "alt_texts_per_image": ("Alt-texts per image (same SHA-256), log scale", True, True),
    "images_per_alt_text": ("Distinct images per alt-text, log scale", True, True),
}


def esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def pct(part, total) -> str:
    return f"{100.0 * part / total:.1f}%" if total else "0.0%"


def _threshold(stats, reason, key, default):
    value = stats.get("filters", {}).get(reason, {}).get(key)
    return stats.get("config", {}).get(key, default) if value is None else value


def _dropped_predicates(stats):
    """Per histogram: (lo, hi) -> True when every value of the bucket is dropped by its filter."""
    side = _threshold(stats, reasons.IMAGE_TOO_SMALL, "min_image_side_px", 200)
    ratio = _threshold(stats, reasons.ASPECT_RATIO, "max_aspect_ratio", 3.0)
    min_w = _threshold(stats, reasons.TOO_FEW_WORDS, "min_words", 3)
    max_w = _threshold(stats, reasons.TOO_MANY_WORDS, "max_words", 20)
    per_image = _threshold(stats, reasons.TOO_MANY_ALT_TEXTS, "max_alt_texts_per_image", 1000)
    per_text = _threshold(stats, reasons.ALT_TEXT_SHARED, "max_images_per_alt_text", 10)
    return {
        "shorter_side_px": lambda lo, hi: hi is not None and hi - 1 <= side,
        "aspect_ratio": lambda lo, hi: lo >= ratio,
        "words_per_text": lambda lo, hi: (hi is not None and hi - 1 < min_w) or lo > max_w,
        "alt_texts_per_image": lambda lo, hi: lo > per_image,
        "images_per_alt_text": lambda lo, hi: lo > per_text,
    }


def section_funnel(stats) -> str:
    total = int(stats.get("input_pairs", 0))
    kept = int(stats.get("kept_pairs", 0))
    dropped = stats.get("dropped", {})
    errors = stats.get("errors", {})
    order = list(stats.get("drop_order", reasons.DROP_ORDER))
    order += [r for r in dropped if r not in order]
    n_errors, n_dropped = sum(errors.values()), sum(dropped.values())
    identity_ok = total == kept + n_dropped + n_errors
    cards = "".join(
        f'<div class="kpi"><div class="k">{label}</div><div class="n">{value:,}</div>'
        f'<div class="p">{pct(value, total) if label != "Input pairs" else "&nbsp;"}</div></div>'
        for label, value in (("Input pairs", total), ("Kept", kept), ("Dropped", n_dropped),
                             ("Errors (unreadable)", n_errors)))
    segments = [("kept", kept, KEPT_COLOR)] + [
        (r, dropped.get(r, 0), REASON_COLORS.get(r, "#999")) for r in order] + [("errors", n_errors, ERROR_COLOR)]
    legend = "".join(f'<span class="lg"><i style="background:{c}"></i>{esc(label)}</span>'
                     for label, n, c in segments if n > 0)
    rows, remaining = [], total
    stages = [("errors", "Unreadable input (errors)", n_errors, ERROR_COLOR)] + [
        (r, r, dropped.get(r, 0), REASON_COLORS.get(r, "#999")) for r in order]
    filters = stats.get("filters", {})
    rows.append(_funnel_row("Input pairs", "", None, total, total, "#4a7fc1", ""))
    for anchor, label, removed, color in stages:
        remaining -= removed
        applied = filters.get(anchor, {}).get("applied", True) if anchor != "errors" else True
        badge = "" if applied else '<span class="badge na">NOT APPLIED</span>'
        rows.append(_funnel_row(label, anchor, removed, remaining, total, color, badge))
    rows.append(_funnel_row("Kept", "", None, kept, total, KEPT_COLOR, "", css_class="kept"))
    check = (f'<p class="ok">\u2713 input_pairs {total:,} = kept {kept:,} + dropped {n_dropped:,} '
             f'+ errors {n_errors:,}</p>' if identity_ok else
             f'<p class="bad">\u2717 identity broken: input_pairs {total:,} \u2260 kept {kept:,} + '
             f'dropped {n_dropped:,} + errors {n_errors:,}</p>')
    return (f'<section id="funnel"><h2>Funnel</h2><div class="kpis">{cards}</div>'
            f'{stacked_bar(segments, total)}<div class="legend">{legend}</div>{check}'
            '<p class="muted">Each pair is counted once, under the first reason in the fixed drop '
            'order (errors first). Bars show the pairs remaining after each stage.</p>'
            f'<table class="funnel"><tr><th>stage</th><th class="r">removed</th><th></th>'
            f'<th class="r">remaining</th></tr>{"".join(rows)}</table></section>')


def _funnel_row(label, anchor, removed, remaining, total, color, badge, css_class="") -> str:
    width = 100.0 * remaining / total if total else 0
    name = f'<a href="#r-{esc(anchor)}">{esc(label)}</a>' if anchor and removed else esc(label)
    removed_txt = "" if removed is None else (f"\u2212{removed:,}" if removed else "0")
    css_class = css_class or ("zero" if removed == 0 else "")
    dim = f' class="{css_class}"' if css_class else ""
    return (f'<tr{dim}><td><i class="dot" style="background:{color}"></i>{name} {badge}</td>'
            f'<td class="r">{removed_txt}</td><td class="barcell"><div class="bar" '
            f'style="width:{width:.2f}%"></div></td><td class="r">{remaining:,} '
            f'<span class="muted">{pct(remaining, total)}</span></td></tr>')


def section_filters(stats) -> str:
    filters = stats.get("filters", {})
    dropped = stats.get("dropped", {})
    rows = []
    for reason in list(stats.get("drop_order", reasons.DROP_ORDER)):
        f = filters.get(reason, {})
        applied = f.get("applied")
        status = ('<span class="badge ok">applied</span>' if applied else
                  '<span class="badge na">NOT APPLIED</span>' if applied is False else
                  '<span class="badge">unknown</span>')
        params = ", ".join(f"{esc(k)}={esc(v)}" for k, v in f.items() if k not in ("applied", "note"))
        rows.append(f'<tr><td><i class="dot" style="background:{REASON_COLORS.get(reason, "#999")}"></i>'
                    f'<code>{esc(reason)}</code></td><td>{status}</td><td class="r">'
                    f'{dropped.get(reason, 0):,}</td><td>{esc(f.get("note", ""))}'
                    f'<div class="muted small">{params}</div></td></tr>')
    return ('<section id="filters"><h2>Filters</h2><table class="grid"><tr><th>reason</th>'
            '<th>status</th><th class="r">dropped</th><th>rule and parameters</th></tr>'
            f'{"".join(rows)}</table></section>')


def section_histograms(stats) -> str:
    hists = stats.get("histograms", {})
    predicates = _dropped_predicates(stats)
    blocks = []
    for name in list(HISTOGRAMS) + sorted(n for n in hists if n not in HISTOGRAMS):
        if name not in hists:
            blocks.append(f'<figure><figcaption>{esc(name)}</figcaption><p class="muted">not in '
                          'stats.json</p></figure>')
            continue
        title, integer, log_scale = HISTOGRAMS.get(name, (name, True, False))
        h = hists[name]
        note = f'<div class="muted small">{esc(h["note"])}</div>' if h.get("note") else ""
        blocks.append(f'<figure><figcaption>{esc(title)} <span class="muted small">'
                      f'({sum(h.get("counts", [])):,} values)</span>{note}</figcaption>'
                      + histogram_svg(h, integer=integer, log_scale=log_scale,
                                      dropped_bucket=predicates.get(name), title=title)
                      + "</figure>")
    return ('<section id="histograms"><h2>Histograms</h2><p class="muted"><span class="sw" '
            'style="background:#d9534f"></span> buckets the filter drops entirely &nbsp; '
            '<span class="sw" style="background:#4a7fc1"></span> kept range (hover a bar for '
            f'exact counts)</p><div class="charts">{"".join(blocks)}</div></section>')
