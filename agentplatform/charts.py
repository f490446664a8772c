"""Server-rendered SVG charts for the admin pages (no script, no CDN): one set of axes, ticks,
number formats and escaping for the monitoring dashboard, the experiment stats page and reports.

Every text and attribute goes through ``Svg``, which escapes it, so a label holding markup (an
operation name an agent sent, an experiment key, a report's action) is shown, never run; charts
come back as ``SafeString`` for the templates.

- ``nice_ticks(low, high)``: round tick values, steps of 1, 2, 2.5 or 5 times a power of ten;
- ``format_number(value, unit)``: the one way a number is written on an axis or a label;
- ``line_chart``: series over time (datetimes or days), gaps where a value is None;
- ``bar_chart``: horizontal bars of (label, value);
- ``interval_chart``: estimates with their intervals around a reference line (a forest plot).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# Colour-blind-safe palette (Okabe and Ito), in the order series get them.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
GRID = "#eaeef2"
MUTED = "#57606a"
INK = "#24292f"
BAR = "#417690"  # the admin's own blue
FONT = 'font-family="sans-serif"'


# --- numbers -------------------------------------------------------------------------------------


def nice_ticks(low: float, high: float, count: int = 5, *, cover: bool = False) -> list[float]:
    """About ``count`` round values between ``low`` and ``high``.

    With ``cover``, the first and last tick lie at or beyond ``low`` and ``high`` (an axis that
    starts and ends on a tick); without, every tick lies within them.
    """
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("ticks need finite bounds")
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    slack = step * 1e-9  # a bound a rounding error away from a tick counts as that tick
    if cover:
        first, last = math.floor((low + slack) / step) * step, math.ceil((high - slack) / step) * step
    else:
        first, last = math.ceil((low - slack) / step) * step, high
    count = math.floor((last - first) / step + 1e-9) + 1
    return [round(first + index * step, 12) + 0.0 for index in range(count)]  # + 0.0: never "-0"


def format_number(value: float, unit: str = "", *, compact: bool = False, signed: bool = False) -> str:
    """``value`` for a reader: thousands separated (``1,234``), or ``1.2k`` when ``compact``.

    ``unit`` follows the number (``12 ms``, ``5%``); ``signed`` writes ``+`` on positive values.
    Milliseconds from a second on are written in seconds (``1.25 s``, not ``1.25k ms``).
    """
    sign = "+" if signed and value != 0 else ""
    magnitude = abs(value)
    if unit == "ms" and magnitude >= 1000:
        value, magnitude, unit = value / 1000, magnitude / 1000, "s"
    if compact and magnitude >= 1_000_000:
        text = f"{value / 1_000_000:{sign}.3g}M"
    elif compact and magnitude >= 1000:
        text = f"{value / 1000:{sign}.3g}k"
    elif compact:
        text = f"{value:{sign}.4g}"
    elif float(value).is_integer():
        text = f"{int(value):{sign},}"
    elif magnitude < 1:
        text = f"{value:{sign}.3g}"
    else:
        text = f"{value:{sign},.1f}"
    return f"{text}{unit}" if unit in ("", "%") else f"{text} {unit}"


def _shorten(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


# --- the drawing ----------------------------------------------------------------------------------


def _attribute(name: str, value: object) -> str:
    name = name.rstrip("_").replace("_", "-")  # class_ -> class, stroke_width -> stroke-width
    if isinstance(value, float):
        value = f"{value:.1f}"
    return f'{name}="{escape(value)}"'


class Svg:
    """An ``<svg>`` element built piece by piece; every text and attribute value is escaped."""

    def __init__(self, *, width: int, height: int, title: str, css_class: str, font_size: int = 12):
        self.parts = [
            f'<svg xmlns="http://www.w3.org/2000/svg" role="img" {_attribute("class", css_class)} '
            f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" {FONT} font-size="{font_size}" '
            f"{_attribute('aria-label', title)}><title>{escape(title)}</title>"
        ]

    def add(self, tag: str, text: str | None = None, *, tooltip: str | None = None, **attributes: object) -> None:
        """``<tag attributes><title>tooltip</title>text</tag>`` (self-closing when empty)."""
        opening = " ".join([tag, *(_attribute(name, value) for name, value in attributes.items())])
        inside = (f"<title>{escape(tooltip)}</title>" if tooltip is not None else "") + (
            escape(text) if text is not None else ""
        )
        self.parts.append(f"<{opening}>{inside}</{tag}>" if inside else f"<{opening}/>")

    def text(self, x: float, y: float, text: str, **attributes: object) -> None:
        self.add("text", text, x=x, y=y, **attributes)

    @contextlib.contextmanager
    def group(self, *, tooltip: str | None = None, **attributes: object) -> Iterator[None]:
        opening = " ".join(["g", *(_attribute(name, value) for name, value in attributes.items())])
        self.parts.append(f"<{opening}>" + (f"<title>{escape(tooltip)}</title>" if tooltip is not None else ""))
        yield
        self.parts.append("</g>")

    def render(self) -> SafeString:
        return mark_safe("".join([*self.parts, "</svg>"]))  # noqa: S308 - every text and attribute is escaped


@dataclass(frozen=True)
class Scale:
    """A linear map from data values (``low``..``high``) to pixels (``start``..``end``)."""

    low: float
    high: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        span = self.high - self.low or 1.0
        return self.start + (value - self.low) / span * (self.end - self.start)


def _empty(*, width: int, title: str, css_class: str, message: str, show_title: bool = False) -> SafeString:
    svg = Svg(width=width, height=60 if show_title else 40, title=title, css_class=css_class)
    if show_title:
        svg.text(10, 14, title, font_weight="bold", fill=INK)
    svg.text(10, 44 if show_title else 24, message, fill=MUTED)
    return svg.render()


# --- line charts over time -------------------------------------------------------------------------

Moment = datetime | date
# (x, y) or (x, y, note): the note is added to the point's tooltip ("120 users").
Point = tuple[Moment, float | None] | tuple[Moment, float | None, str]


def _seconds(moment: Moment) -> float:
    if isinstance(moment, datetime):
        return moment.timestamp()
    return (moment - date(1970, 1, 1)).days * 86400.0


def _x_labels(moments: Sequence[Moment], scale: Scale) -> list[tuple[float, str]]:
    """Where the time axis is labelled, and how: days by date, instants by time of day."""
    if all(not isinstance(m, datetime) for m in moments):
        days = sorted(set(moments))
        shown = days if len(days) <= 8 else days[:: math.ceil(len(days) / 8)]
        return [(scale(_seconds(day)), day.strftime("%m-%d")) for day in shown]
    zone = next(m.tzinfo for m in moments if isinstance(m, datetime)) or UTC
    pattern = "%H:%M" if scale.high - scale.low <= 2 * 86400 else "%m-%d %H:%M"
    return [
        (scale(seconds), datetime.fromtimestamp(seconds, tz=zone).strftime(pattern))
        for seconds in (scale.low + (scale.high - scale.low) * step / 4 for step in range(5))
    ]


def line_chart(
    series: Sequence[tuple[str, Sequence[Point]]],
    *,
    title: str,
    unit: str = "",
    css_class: str = "line-chart",
    width: int = 560,
    height: int = 180,
    from_zero: bool = True,
    markers: bool = False,
    show_title: bool = True,
    x_label: str = "",
    empty: str = "No data in this window.",
) -> SafeString:
    """One line per series over a shared time axis, a gap where a value is None.

    ``from_zero``: the value axis starts at zero (latencies, rates); otherwise it fits the data
    (means that differ in the third digit). ``markers`` draws every point with its tooltip.
    Below the plot: the tick labels, ``x_label`` and the legend, three series a row.
    """
    values = [p[1] for _, points in series for p in points if p[1] is not None and math.isfinite(p[1])]
    if not values:
        return _empty(width=width, title=title, css_class=css_class, message=empty, show_title=show_title)
    moments = [p[0] for _, points in series for p in points if p[1] is not None]
    left, right = 56, 12
    top = 26 if show_title else 10
    legend_rows = (len(series) + 2) // 3
    caption = 16 if x_label else 0
    plot_height = height - top - 34 - caption  # below: tick labels, the caption, then the legend
    total_height = height + 18 * legend_rows
    low, high = min(values), max(values)
    if from_zero:
        low = min(0.0, low)
    else:
        pad = (high - low) * 0.1 or abs(high) * 0.05 or 1.0
        low, high = low - pad, high + pad
    ticks = nice_ticks(low, high, 4, cover=True)
    y = Scale(ticks[0], ticks[-1], top + plot_height, top)
    seconds = [_seconds(m) for m in moments]
    x = Scale(min(seconds), max(seconds), left, width - right)

    svg = Svg(width=width, height=total_height, title=title, css_class=css_class, font_size=11)
    if show_title:
        svg.text(left, 14, title, font_size=12, font_weight="bold", fill=INK)
    for tick in ticks:
        svg.add("line", x1=left, x2=width - right, y1=y(tick), y2=y(tick), stroke=GRID)
        svg.text(left - 4, y(tick) + 4, format_number(tick, unit, compact=True), text_anchor="end", fill=MUTED)
    for position, label in _x_labels(moments, x):
        anchor = "end" if position > width - right - 20 else "middle"  # the last label stays inside
        svg.text(position, top + plot_height + 14, label, text_anchor=anchor, fill=MUTED)
    if x_label:
        svg.text((left + width - right) / 2, top + plot_height + 29, x_label, text_anchor="middle", fill=MUTED)
    for index, (name, points) in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        runs: list[list[tuple[float, float]]] = [[]]
        with svg.group(tooltip=name, class_="series"):
            for point in points:
                if point[1] is None or not math.isfinite(point[1]):
                    runs.append([])
                    continue
                px, py = x(_seconds(point[0])), y(point[1])
                runs[-1].append((px, py))
                if markers:
                    note = f" ({point[2]})" if len(point) > 2 else ""
                    tooltip = f"{name} {point[0].isoformat()}: {format_number(point[1], unit, compact=True)}{note}"
                    svg.add("circle", tooltip=tooltip, cx=px, cy=py, r=3, fill=colour)
            for run in runs:
                if len(run) == 1 and not markers:
                    svg.add("circle", cx=run[0][0], cy=run[0][1], r=2, fill=colour)
                elif len(run) > 1:
                    path = " ".join(f"{px:.1f},{py:.1f}" for px, py in run)
                    svg.add("polyline", points=path, fill="none", stroke=colour, stroke_width=2)
        legend_x = left + (index % 3) * ((width - left - right) // 3)
        legend_y = height + 18 * (index // 3)
        svg.add("rect", x=legend_x, y=legend_y - 9, width=10, height=10, fill=colour)
        svg.text(legend_x + 14, legend_y, _shorten(name, 48), fill=INK)
    return svg.render()


# --- bars --------------------------------------------------------------------------------------------


def bar_chart(
    items: Sequence[tuple[str, float | None]],
    *,
    title: str,
    unit: str = "",
    css_class: str = "bar-chart",
    max_bars: int = 20,
    empty: str = "no data",
) -> SafeString:
    """Horizontal bars of (label, value), the longest for the largest value; at most ``max_bars``."""
    label_width, bar_width, value_width, bar_height, gap = 220, 360, 80, 18, 6
    items = [(str(label), float(value)) for label, value in items if value is not None][:max_bars]
    width = label_width + bar_width + value_width
    height = max(1, len(items)) * (bar_height + gap) + gap
    svg = Svg(width=width, height=height, title=title, css_class=css_class)
    if not items:
        svg.text(0, bar_height, empty, fill=MUTED)
    largest = max((value for _, value in items), default=0) or 1
    for index, (label, value) in enumerate(items):
        top = gap + index * (bar_height + gap)
        length = max(1.0, bar_width * value / largest) if value > 0 else 0.0
        shown = format_number(value, unit)
        baseline = top + bar_height - 5
        svg.text(label_width - 6, baseline, _shorten(label, 32), text_anchor="end", fill=INK)
        svg.add("rect", tooltip=f"{label}: {shown}", x=label_width, y=top, width=length, height=bar_height, fill=BAR)
        svg.text(label_width + length + 4, baseline, shown, fill=INK)
    return svg.render()


# --- estimates with intervals ------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    """One row of an interval chart: ``estimate`` within ``low``..``high``, drawn in ``colour``."""

    label: str
    estimate: float
    low: float
    high: float
    colour: str
    tooltip: str = ""


def interval_chart(
    rows: Sequence[Interval],
    *,
    title: str,
    axis_label: str,
    unit: str = "",
    reference: float = 0.0,
    css_class: str = "interval-chart",
    row_class: str = "interval-row",
    width: int = 720,
    empty: str = "Nothing to show yet.",
) -> SafeString:
    """One row per estimate: its interval as a bar, the estimate as a dot, a dashed ``reference``."""
    if not rows:
        return _empty(width=width, title=title, css_class=css_class, message=empty)
    row_height, top, bottom, left, right = 28, 24, 34, 210, 24
    height = top + bottom + len(rows) * row_height
    low = min(reference, *(row.low for row in rows))
    high = max(reference, *(row.high for row in rows))
    pad = (high - low) * 0.08 or abs(high) * 0.08 or 1.0
    x = Scale(low - pad, high + pad, left, width - right)
    axis_y = height - bottom
    svg = Svg(width=width, height=height, title=title, css_class=css_class)
    for tick in nice_ticks(low - pad, high + pad):
        svg.add("line", x1=x(tick), y1=top - 6, x2=x(tick), y2=axis_y, stroke=GRID)
        label = format_number(tick, unit, compact=True, signed=True)
        svg.text(x(tick), axis_y + 16, label, text_anchor="middle", fill=MUTED)
    svg.add("line", x1=x(reference), y1=top - 6, x2=x(reference), y2=axis_y, stroke=MUTED, stroke_dasharray="4 3")
    for index, row in enumerate(rows):
        y = top + index * row_height + row_height / 2
        with svg.group(tooltip=row.tooltip or row.label, class_=row_class):
            svg.text(left - 10, y + 4, _shorten(row.label, 34), text_anchor="end", fill=INK)
            svg.add(
                "line",
                x1=x(row.low),
                y1=y,
                x2=x(row.high),
                y2=y,
                stroke=row.colour,
                stroke_width=3,
                stroke_linecap="round",
            )
            svg.add("circle", cx=x(row.estimate), cy=y, r=5, fill=row.colour)
    svg.text((left + width - right) / 2, height - 4, axis_label, text_anchor="middle", fill=MUTED)
    return svg.render()
