"""Server-rendered SVG line charts for the admin dashboard (no script, no CDN)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# Colour-blind-safe palette (Okabe and Ito).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")

Point = tuple[datetime, float | None]


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** len(str(int(value))) / 10 if value >= 1 else 1.0
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return value


def _format(value: float, unit: str) -> str:
    if unit == "%":
        return f"{value:g}%"
    if value >= 1000:
        return f"{value / 1000:g}k{unit}"
    return f"{value:g}{unit}"


def line_chart(
    series: Sequence[tuple[str, Sequence[Point]]],
    *,
    title: str,
    unit: str = "",
    width: int = 560,
    height: int = 180,
) -> SafeString:
    """An SVG with one polyline per series over a shared time axis; gaps where a value is None."""
    left, right, top, bottom = 52, 10, 22, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    points = [(x, y) for _, data in series for x, y in data if y is not None]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 18 * ((len(series) + 2) // 3)}" '
        f'role="img" aria-label="{escape(title)}" class="monitoring-chart">',
        f'<text x="{left}" y="14" font-size="12" font-weight="bold">{escape(title)}</text>',
    ]
    if not points:
        parts.append(
            f'<text x="{left}" y="{top + plot_h // 2}" font-size="12" fill="#666">No data in this window.</text>'
        )
        parts.append("</svg>")
        return mark_safe("".join(parts))  # noqa: S308 (every interpolated text is escaped above)
    x_min = min(x for x, _ in points).timestamp()
    x_max = max(x for x, _ in points).timestamp()
    x_span = max(x_max - x_min, 1.0)
    y_max = _nice_max(max(y for _, y in points))

    def sx(x: datetime) -> float:
        return left + (x.timestamp() - x_min) / x_span * plot_w

    def sy(y: float) -> float:
        return top + plot_h - (y / y_max) * plot_h

    for step in range(5):
        value = y_max * step / 4
        y = sy(value)
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        label = escape(_format(value, unit))
        parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end">{label}</text>')
    x_format = "%H:%M" if x_span <= 2 * 86400 else "%m-%d %H:%M"
    for step in range(5):
        ts = x_min + x_span * step / 4
        label = datetime.fromtimestamp(ts, tz=points[0][0].tzinfo).strftime(x_format)
        x = left + plot_w * step / 4
        parts.append(
            f'<text x="{x:.1f}" y="{top + plot_h + 14}" font-size="10" text-anchor="middle">{escape(label)}</text>'
        )
    for position, (name, data) in enumerate(series):
        colour = PALETTE[position % len(PALETTE)]
        segment: list[str] = []
        segments: list[list[str]] = []
        for x, y in data:
            if y is None:
                if segment:
                    segments.append(segment)
                segment = []
                continue
            segment.append(f"{sx(x):.1f},{sy(y):.1f}")
        if segment:
            segments.append(segment)
        for chunk in segments:
            if len(chunk) == 1:
                cx, cy = chunk[0].split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="2" fill="{colour}"/>')
            else:
                parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{" ".join(chunk)}"/>')
        legend_x = left + (position % 3) * (plot_w // 3)
        legend_y = height + 18 * (position // 3)
        parts.append(f'<rect x="{legend_x}" y="{legend_y - 9}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{legend_x + 14}" y="{legend_y}" font-size="11">{escape(name[:48])}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 (every interpolated text is escaped above)
