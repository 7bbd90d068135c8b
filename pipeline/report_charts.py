"""Inline SVG bar charts of stats.json histograms for the audit report (no JavaScript, no CDN)."""
import html
import math
from typing import Callable, List, Optional

WIDTH, HEIGHT = 620, 250
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 14, 14, 26, 58
KEPT_COLOR, DROPPED_COLOR, NEUTRAL_COLOR = "#4a7fc1", "#d9534f", "#8a99ad"


def compact(n) -> str:
    """1234 -> 1.2k, 5600000 -> 5.6M (exact values are in the tooltips and tables)."""
    n = float(n)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= limit:
            value = n / limit
            return (f"{value:.1f}".rstrip("0").rstrip(".")) + suffix
    return str(int(n)) if n == int(n) else f"{n:g}"


def _number(value: float, integer: bool) -> str:
    return str(int(value)) if integer else f"{value:g}"


def bucket_labels(edges: List[float], integer: bool) -> List[str]:
    """[lo, hi) bucket labels: '5-10' for integer counts (hi-1 shown), '1.5-2' for ratios, '>=lo'
    for the open last bucket."""
    labels = []
    for i, lo in enumerate(edges):
        if i == len(edges) - 1:
            labels.append("\u2265" + _number(lo, integer))
        elif integer:
            hi = edges[i + 1] - 1
            labels.append(_number(lo, True) if hi <= lo else f"{_number(lo, True)}\u2013{_number(hi, True)}")
        else:
            labels.append(f"{_number(lo, False)}\u2013{_number(edges[i + 1], False)}")
    return labels


def histogram_svg(histogram: dict, *, integer: bool = True, log_scale: bool = False,
                  dropped_bucket: Optional[Callable[[float, Optional[float]], bool]] = None,
                  title: str = "") -> str:
    """One bar per bucket, count above each bar; buckets the filter drops entirely in red."""
    edges, counts = list(histogram.get("edges", [])), list(histogram.get("counts", []))
    if not edges or len(edges) != len(counts):
        return '<p class="muted">histogram missing or malformed</p>'
    labels = bucket_labels(edges, integer)
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    slot = plot_w / len(counts)
    scale = (lambda c: math.log10(1 + c)) if log_scale else (lambda c: float(c))
    top = max((scale(c) for c in counts), default=0) or 1.0
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
             f'aria-label="{html.escape(title, quote=True)}" xmlns="http://www.w3.org/2000/svg">']
    base_y = PAD_TOP + plot_h
    parts.append(f'<line x1="{PAD_LEFT}" y1="{base_y}" x2="{WIDTH - PAD_RIGHT}" y2="{base_y}" '
                 'stroke="#9aa5b1" stroke-width="1"/>')
    for i, (label, count) in enumerate(zip(labels, counts)):
        hi = edges[i + 1] if i + 1 < len(edges) else None
        dropped = dropped_bucket(edges[i], hi) if dropped_bucket else None
        color = NEUTRAL_COLOR if dropped is None else (DROPPED_COLOR if dropped else KEPT_COLOR)
        h = 0.0 if count == 0 else max(2.0, plot_h * scale(count) / top)
        x = PAD_LEFT + i * slot + slot * 0.12
        w = slot * 0.76
        cx = PAD_LEFT + (i + 0.5) * slot
        tip = html.escape(f"{label}: {count:,} ({'dropped by the filter' if dropped else 'kept range'})"
                          if dropped is not None else f"{label}: {count:,}")
        parts.append(f'<g><title>{tip}</title><rect x="{x:.1f}" y="{base_y - h:.1f}" width="{w:.1f}" '
                     f'height="{h:.1f}" rx="2" fill="{color}"/>')
        parts.append(f'<text x="{cx:.1f}" y="{base_y - h - 5:.1f}" class="v">{compact(count)}</text></g>')
        parts.append(f'<text x="{cx:.1f}" y="{base_y + 8:.1f}" class="l" '
                     f'transform="rotate(40 {cx:.1f} {base_y + 8:.1f})">{html.escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def stacked_bar(segments: List[tuple], total: int) -> str:
    """HTML 100% bar: segments (label, count, color); zero segments omitted."""
    if total <= 0:
        return '<div class="stack"><div class="seg" style="width:100%;background:#ddd"></div></div>'
    cells = []
    for label, count, color in segments:
        if count <= 0:
            continue
        pct = 100.0 * count / total
        cells.append(f'<div class="seg" style="width:{pct:.3f}%;background:{color}" '
                     f'title="{html.escape(label, quote=True)}: {count:,} ({pct:.1f}%)"></div>')
    return '<div class="stack">' + "".join(cells) + "</div>"
