"""Server-rendered SVG charts for the admin stats page (no script, no CDN).

Each function returns a complete ``<svg>`` element as a string; every piece of text in it is
escaped, so the template can mark it safe.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date
from html import escape

GOOD = "#1a7f37"
BAD = "#cf222e"
NEUTRAL = "#6e7781"
PALETTE = ["#0969da", "#bf3989", "#9a6700", "#1a7f37", "#8250df", "#cf222e", "#6e7781"]


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    span = high - low
    if span <= 0:
        return [low]
    raw = span / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = min((m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw), default=raw)
    first = math.ceil(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks


def forest_plot_svg(comparisons: Sequence[Mapping], *, higher_is_better: Mapping[str, bool], width: int = 720) -> str:
    """Each treatment's relative lift with its interval, one row per metric and treatment.

    Green: significantly better in the metric's direction; red: significantly worse; grey: not
    significant. The dashed line is no change.
    """
    rows = [c for c in comparisons if c.get("lift") is not None and c.get("lift_ci_low") is not None]
    row_height, top, bottom, left, right = 28, 24, 34, 210, 24
    height = top + bottom + max(1, len(rows)) * row_height
    if not rows:
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="forest-plot" width="{width}" height="{height}">'
            f'<title>Lift by metric</title><text x="10" y="{top + 16}" fill="{NEUTRAL}">'
            "No comparisons yet.</text></svg>"
        )
    low = min(0.0, *(r["lift_ci_low"] for r in rows))
    high = max(0.0, *(r["lift_ci_high"] for r in rows))
    pad = (high - low) * 0.08 or 0.01
    low, high = low - pad, high + pad
    plot_width = width - left - right

    def x(value: float) -> float:
        return left + (value - low) / (high - low) * plot_width

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="forest-plot" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        "<title>Relative lift of each treatment against the control, with its interval</title>",
    ]
    axis_y = height - bottom
    for tick in _nice_ticks(low, high):
        tx = x(tick)
        parts.append(f'<line x1="{tx:.1f}" y1="{top - 6}" x2="{tx:.1f}" y2="{axis_y}" stroke="#eaeef2"/>')
        parts.append(
            f'<text x="{tx:.1f}" y="{axis_y + 16}" text-anchor="middle" fill="#57606a">{tick * 100:+.1f}%</text>'
        )
    zero = x(0.0)
    parts.append(
        f'<line x1="{zero:.1f}" y1="{top - 6}" x2="{zero:.1f}" y2="{axis_y}" stroke="#57606a" stroke-dasharray="4 3"/>'
    )
    for index, row in enumerate(rows):
        y = top + index * row_height + row_height / 2
        gain = row["diff"] if higher_is_better.get(row["metric"], True) else -row["diff"]
        color = NEUTRAL if not row["significant"] else (GOOD if gain > 0 else BAD)
        label = escape(f"{row['metric']} · {row['variant']}")
        tooltip = escape(
            f"{row['variant']} on {row['metric']}: {row['lift'] * 100:+.2f}% "
            f"[{row['lift_ci_low'] * 100:+.2f}%, {row['lift_ci_high'] * 100:+.2f}%]"
        )
        parts.append(f'<g class="forest-row"><title>{tooltip}</title>')
        parts.append(f'<text x="{left - 10}" y="{y + 4:.1f}" text-anchor="end" fill="#24292f">{label}</text>')
        parts.append(
            f'<line x1="{x(row["lift_ci_low"]):.1f}" y1="{y:.1f}" x2="{x(row["lift_ci_high"]):.1f}" y2="{y:.1f}" '
            f'stroke="{color}" stroke-width="3" stroke-linecap="round"/>'
        )
        parts.append(f'<circle cx="{x(row["lift"]):.1f}" cy="{y:.1f}" r="5" fill="{color}"/></g>')
    parts.append(
        f'<text x="{left + plot_width / 2:.1f}" y="{height - 4}" text-anchor="middle" fill="#57606a">'
        "lift vs control (interval: 95%, always-valid when sequential)</text></svg>"
    )
    return "".join(parts)


def cumulative_chart_svg(
    series: Mapping[str, Sequence[tuple[date, float, int]]], *, metric: str, width: int = 720, height: int = 280
) -> str:
    """The cumulative per-user mean of ``metric`` per variant at the end of each day."""
    points = [p for values in series.values() for p in values]
    top, bottom, left, right = 20, 40, 70, 120
    if not points:
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="cumulative-chart" width="{width}" height="60">'
            f'<title>Cumulative {escape(metric)}</title><text x="10" y="30" fill="{NEUTRAL}">'
            "No daily data yet.</text></svg>"
        )
    days = sorted({p[0] for p in points})
    first_day, last_day = days[0], days[-1]
    day_span = max(1, (last_day - first_day).days)
    low = min(p[1] for p in points)
    high = max(p[1] for p in points)
    pad = (high - low) * 0.1 or abs(high) * 0.05 or 1.0
    low, high = low - pad, high + pad
    plot_width, plot_height = width - left - right, height - top - bottom

    def x(day: date) -> float:
        return left + (day - first_day).days / day_span * plot_width

    def y(value: float) -> float:
        return top + (1 - (value - low) / (high - low)) * plot_height

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="cumulative-chart" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f"<title>Cumulative {escape(metric)} per variant per day</title>",
    ]
    for tick in _nice_ticks(low, high):
        ty = y(tick)
        parts.append(f'<line x1="{left}" y1="{ty:.1f}" x2="{left + plot_width}" y2="{ty:.1f}" stroke="#eaeef2"/>')
        parts.append(f'<text x="{left - 8}" y="{ty + 4:.1f}" text-anchor="end" fill="#57606a">{tick:.4g}</text>')
    label_days = days if len(days) <= 8 else days[:: math.ceil(len(days) / 8)]
    for day in label_days:
        parts.append(
            f'<text x="{x(day):.1f}" y="{height - bottom + 18}" text-anchor="middle" fill="#57606a">'
            f"{day.strftime('%m-%d')}</text>"
        )
    for index, (variant, values) in enumerate(series.items()):
        if not values:
            continue
        color = PALETTE[index % len(PALETTE)]
        path = " ".join(f"{x(d):.1f},{y(v):.1f}" for d, v, _ in values)
        parts.append(
            f'<g class="series"><title>{escape(variant)}</title>'
            f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>'
        )
        for d, v, users in values:
            parts.append(
                f'<circle cx="{x(d):.1f}" cy="{y(v):.1f}" r="3" fill="{color}">'
                f"<title>{escape(variant)} {d.isoformat()}: {v:.4g} ({users} users)</title></circle>"
            )
        parts.append("</g>")
        legend_y = top + 16 * index + 8
        parts.append(
            f'<rect x="{left + plot_width + 16}" y="{legend_y - 8}" width="10" height="10" fill="{color}"/>'
            f'<text x="{left + plot_width + 32}" y="{legend_y + 1}" fill="#24292f">{escape(variant)}</text>'
        )
    parts.append(
        f'<text x="{left + plot_width / 2:.1f}" y="{height - 6}" text-anchor="middle" fill="#57606a">'
        f"day (UTC) · per-user mean of {escape(metric)} over all days so far</text></svg>"
    )
    return "".join(parts)
