"""Small inline SVG charts for the dashboard (no JavaScript, no CDN; numbers and escaped text)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe


def bar_chart(
    data: Sequence[tuple[str, float]], *, title: str, width: int = 560, height: int = 140
) -> SafeString:
    """Vertical bars, one per (label, value); the first and last labels are printed."""
    if not data:
        return mark_safe("")
    top = max(max(v for _l, v in data), 1)
    bw = width / len(data)
    bars = []
    for i, (label, v) in enumerate(data):
        h = (height - 30) * v / top
        bars.append(
            format_html(
                '<rect x="{}" y="{}" width="{}" height="{}" class="bar">'
                "<title>{}: {}</title></rect>",
                i * bw + 2,
                height - 20 - h,
                max(bw - 4, 1),
                h,
                label,
                v,
            )  # fmt: skip
        )
    labels = format_html(
        '<text x="0" y="{}" class="axis">{}</text>'
        '<text x="{}" y="{}" class="axis" text-anchor="end">{}</text>'
        '<text x="{}" y="12" class="axis" text-anchor="end">max {}</text>',
        height - 4, data[0][0], width, height - 4, data[-1][0], width, top,
    )  # fmt: skip
    return mark_safe(
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
        f'class="chart">{"".join(bars)}{labels}</svg>'
    )


def hbar_chart(
    data: Sequence[tuple[str, float]], *, title: str, width: int = 560, row: int = 22
) -> SafeString:
    """Horizontal bars for values in 0..1 (trust per annotator), with a 0.5 reference line."""
    if not data:
        return mark_safe("")
    height = row * len(data) + 10
    label_w = 150
    span = width - label_w - 50
    parts = []
    for i, (label, v) in enumerate(data):
        v = 0.0 if v is None or math.isnan(v) else max(0.0, min(1.0, v))
        y = 5 + i * row
        parts.append(
            format_html(
                '<text x="{}" y="{}" class="axis" text-anchor="end">{}</text>'
                '<rect x="{}" y="{}" width="{}" height="{}" class="bar"></rect>'
                '<text x="{}" y="{}" class="axis">{}</text>',
                label_w - 6,
                y + row * 0.65,
                label[:20],
                label_w,
                y + 3,
                span * v,
                row - 8,
                label_w + span * v + 4,
                y + row * 0.65,
                v,
            )  # fmt: skip
        )
    ref = label_w + span * 0.5
    parts.append(
        format_html('<line x1="{}" x2="{}" y1="0" y2="{}" class="ref"></line>', ref, ref, height)
    )
    return mark_safe(
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
        f'class="chart">{"".join(parts)}</svg>'
    )
