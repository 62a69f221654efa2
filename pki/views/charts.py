"""Small server-side SVG bar charts (no chart library, no JavaScript, nothing fetched)."""

from __future__ import annotations

import math

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

AXIS = "#5d6677"
GRID = "#e3e7ee"


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... that is at least ``value`` (the y axis' top)."""
    if value <= 1:
        return 1
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def gridlines(top: int) -> int:
    """How many equal steps divide a ``nice_ceiling`` axis into whole numbers (0-2-4 ..., 0-5-10 ...)."""
    if top <= 5:
        return top
    return 4 if str(top)[0] == "2" else 5


def bar_chart(labels: list[str], values: list[int], title: str, width: int = 520, height: int = 210,
              label_every: int = 1, color: str = "#1f5fbf") -> SafeString:
    """A bar chart as inline SVG with gridlines at whole numbers; each bar has a tooltip with its label
    and value. Every piece of text is escaped."""
    if len(labels) != len(values):
        raise ValueError("labels and values differ in length")
    pad_l, pad_r, pad_b, pad_t = 40, 10, 28, 30
    plot_w, plot_h = width - pad_l - pad_r, height - pad_b - pad_t
    top = nice_ceiling(max(values, default=0))
    bar_w = plot_w / max(len(values), 1)
    base = pad_t + plot_h
    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
        f'xmlns="http://www.w3.org/2000/svg" font-size="11" font-family="system-ui, sans-serif">',
        f'<text x="{pad_l}" y="16" font-size="14" font-weight="600" fill="#1d2330">{escape(title)}</text>',
    ]
    steps = gridlines(top)
    for i in range(steps + 1):
        y = base - plot_h * i / steps
        parts.append(f'<line x1="{pad_l}" y1="{y:.1f}" x2="{width - pad_r}" y2="{y:.1f}" '
                     f'stroke="{AXIS if i == 0 else GRID}" stroke-width="1"/>')
        parts.append(f'<text x="{pad_l - 6}" y="{y + 3:.1f}" text-anchor="end" fill="{AXIS}">{top * i // steps}</text>')
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        h = plot_h * value / top
        x = pad_l + i * bar_w
        gap = min(2.0, bar_w * 0.2)
        parts.append(
            f'<rect class="bar" x="{x + gap:.1f}" y="{base - h:.1f}" width="{max(bar_w - 2 * gap, 1):.1f}" '
            f'height="{h:.1f}" rx="1.5" fill="{escape(color)}"><title>{escape(label)}: {value}</title></rect>'
        )
        if i % label_every == 0:
            parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{height - 10}" text-anchor="middle" fill="{AXIS}">'
                         f'{escape(label)}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 (every interpolated text is escaped above)
