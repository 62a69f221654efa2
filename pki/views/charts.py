"""Small server-side SVG bar charts (no chart library, no JavaScript, nothing fetched)."""

from __future__ import annotations

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe


def bar_chart(labels: list[str], values: list[int], title: str, width: int = 560, height: int = 180,
              label_every: int = 1) -> SafeString:
    """A bar chart as inline SVG; each bar has a tooltip with its label and value."""
    pad_l, pad_b, pad_t = 34, 26, 22
    plot_w, plot_h = width - pad_l - 8, height - pad_b - pad_t
    top = max(values + [1])
    n = max(len(values), 1)
    bar_w = plot_w / n
    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
        f'xmlns="http://www.w3.org/2000/svg" font-size="10" font-family="system-ui, sans-serif">',
        f'<text x="{pad_l}" y="13" font-size="12" font-weight="600" fill="#1d2330">{escape(title)}</text>',
        f'<line x1="{pad_l}" y1="{pad_t + plot_h}" x2="{width - 8}" y2="{pad_t + plot_h}" stroke="#bfc7d5"/>',
        f'<text x="{pad_l - 4}" y="{pad_t + 8}" text-anchor="end" fill="#5d6677">{top}</text>',
        f'<text x="{pad_l - 4}" y="{pad_t + plot_h}" text-anchor="end" fill="#5d6677">0</text>',
    ]
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        h = plot_h * value / top
        x = pad_l + i * bar_w
        parts.append(
            f'<rect x="{x + 1:.1f}" y="{pad_t + plot_h - h:.1f}" width="{max(bar_w - 2, 1):.1f}" height="{h:.1f}" '
            f'fill="#1f5fbf"><title>{escape(label)}: {value}</title></rect>'
        )
        if i % label_every == 0:
            parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{height - 8}" text-anchor="middle" fill="#5d6677">'
                         f'{escape(label)}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 (every interpolated text is escaped above)
