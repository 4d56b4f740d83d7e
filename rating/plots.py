"""Server-rendered SVG plots of a snapshot: CI dot plot and heatmaps (no chart library, no CDN).

Every text that comes from data is escaped; the result is marked safe for templates.
"""

from __future__ import annotations

import math
from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

FONT = "font-family='system-ui, sans-serif' font-size='12'"


def _coord(x: float) -> str:
    """An SVG coordinate, to a tenth of a pixel (shorter markup, same drawing)."""
    return f"{x:.1f}"


def ci_plot(rows: list[dict[str, Any]], *, limit: int = 30) -> SafeString:
    """Horizontal dot plot: one line per model, the dot at the score, the bar over the 95% CI."""
    rated = [r for r in rows if r.get("score") is not None][:limit]
    if not rated:
        return mark_safe("")
    label_w, right, row_h, top = 170, 20, 22, 28
    width = 720
    plot_w = width - label_w - right
    lo = min(r["lower"] for r in rated)
    hi = max(r["upper"] for r in rated)
    if hi - lo < 1e-9:
        lo, hi = lo - 10, hi + 10
    pad = (hi - lo) * 0.05
    lo, hi = lo - pad, hi + pad

    def x(v: float) -> float:
        return label_w + (v - lo) / (hi - lo) * plot_w

    height = top + row_h * len(rated) + 10
    parts = [
        f"<svg class='lb-plot' role='img' viewBox='0 0 {width} {height}' "
        f"width='{width}' height='{height}' "
        f"xmlns='http://www.w3.org/2000/svg' aria-labelledby='ci-title'>"
        "<title id='ci-title'>Scores with 95% confidence intervals</title>"
    ]
    step = _nice_step((hi - lo) / 6)
    tick = math.ceil(lo / step) * step
    while tick <= hi:
        parts.append(
            f"<line x1='{_coord(x(tick))}' x2='{_coord(x(tick))}' y1='{top - 6}' y2='{height - 8}' "
            "stroke='currentColor' stroke-opacity='0.15'/>"
            f"<text x='{_coord(x(tick))}' y='{top - 10}' text-anchor='middle' {FONT} "
            f"fill='currentColor'>{tick:.0f}</text>"
        )
        tick += step
    for k, r in enumerate(rated):
        y = top + row_h * k + row_h / 2
        name = escape(r.get("name") or r["model"])
        tip = escape(
            f"{r.get('name') or r['model']}: {r['score']:.1f} "
            f"(95% CI {r['lower']:.1f} to {r['upper']:.1f})"
        )
        parts.append(
            f"<g><title>{tip}</title>"
            f"<text x='{label_w - 8}' y='{_coord(y + 4)}' text-anchor='end' {FONT} "
            f"fill='currentColor'>{name}</text>"
            f"<line x1='{_coord(x(r['lower']))}' x2='{_coord(x(r['upper']))}' y1='{_coord(y)}' y2='{_coord(y)}' "
            "stroke='#2563eb' stroke-width='3' stroke-linecap='round'/>"
            f"<circle cx='{_coord(x(r['score']))}' cy='{_coord(y)}' r='5' fill='#c2410c'/></g>"
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))


def _nice_step(raw: float) -> float:
    if raw <= 0:
        return 1.0
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * mag:
            return float(m * mag)
    return float(10 * mag)


def _color(value: float, *, diverging: bool) -> str:
    """Blue (low) -> white -> orange (high) for win rates; white -> blue for counts."""
    v = max(0.0, min(1.0, value))
    if diverging:
        if v < 0.5:
            t = (0.5 - v) * 2
            r, g, b = 255 - t * (255 - 37), 255 - t * (255 - 99), 255 - t * (255 - 235)
        else:
            t = (v - 0.5) * 2
            r, g, b = 255 - t * (255 - 194), 255 - t * (255 - 65), 255 - t * (255 - 12)
    else:
        r, g, b = 255 - v * (255 - 37), 255 - v * (255 - 99), 255 - v * (255 - 235)
    return f"rgb({r:.0f},{g:.0f},{b:.0f})"


def heatmap(
    models: list[str],
    matrix: list[list[Any]],
    *,
    title: str,
    kind: str,
    labels: dict[str, str] | None = None,
    limit: int = 15,
) -> SafeString:
    """Square heatmap of the top ``limit`` models: row model vs column model.

    ``kind`` is "rate" (values 0-1, shown as percentages) or "count" (shown as integers).
    """
    n = min(limit, len(models))
    if n < 2:
        return mark_safe("")
    labels = labels or {}
    names = [labels.get(m, m) for m in models[:n]]
    cell, left, top = 40, 150, 120
    width, height = left + cell * n + 70, top + cell * n + 10
    values = [v for row in matrix[:n] for v in row[:n] if v is not None]
    vmax = max(values) if values else 1
    slug = escape(kind)
    parts = [
        f"<svg class='lb-plot lb-heatmap' role='img' viewBox='0 0 {width} {height}' "
        f"width='{width}' height='{height}' "
        f"xmlns='http://www.w3.org/2000/svg' aria-labelledby='hm-{slug}'>"
        f"<title id='hm-{slug}'>{escape(title)}</title>"
    ]
    for j, name in enumerate(names):
        cx = left + cell * j + cell / 2
        parts.append(
            f"<text transform='translate({_coord(cx + 4)},{top - 6}) rotate(-55)' {FONT} "
            f"fill='currentColor'>{escape(name[:22])}</text>"
        )
    for i, name in enumerate(names):
        cy = top + cell * i
        parts.append(
            f"<text x='{left - 6}' y='{_coord(cy + cell / 2 + 4)}' text-anchor='end' {FONT} "
            f"fill='currentColor'>{escape(name[:22])}</text>"
        )
        for j in range(n):
            v = matrix[i][j]
            x = left + cell * j
            if v is None:
                parts.append(
                    f"<rect x='{x}' y='{cy}' width='{cell}' height='{cell}' fill='none' "
                    "stroke='currentColor' stroke-opacity='0.1'/>"
                )
                continue
            if kind == "rate":
                fill, text = _color(v, diverging=True), f"{v * 100:.0f}"
                tip = f"{names[i]} beats {names[j]} {v * 100:.1f}% of the time"
            else:
                fill, text = _color(v / vmax if vmax else 0, diverging=False), f"{int(v)}"
                tip = f"{names[i]} vs {names[j]}: {int(v)} battles"
            parts.append(
                f"<g><title>{escape(tip)}</title>"
                f"<rect x='{x}' y='{cy}' width='{cell}' height='{cell}' fill='{fill}' "
                "stroke='white'/>"
                f"<text x='{x + cell / 2}' y='{_coord(cy + cell / 2 + 4)}' text-anchor='middle' "
                f"font-family='system-ui, sans-serif' font-size='11' fill='#111'>{text}</text>"
                "</g>"
            )
    parts.append("</svg>")
    return mark_safe("".join(parts))
