"""agentplatform/charts.py: ticks, number formats, escaping and the three chart kinds."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta

import pytest

from agentplatform.charts import Interval, bar_chart, format_number, interval_chart, line_chart, nice_ticks

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = "<script>alert(1)</script> & \"quoted\" 'single'"


def parse(svg: str) -> ET.Element:
    """The chart as XML: it must be well-formed, whatever text it holds."""
    return ET.fromstring(svg)  # noqa: S314 - the charts' own output, not outside input


def texts(svg: str) -> list[str]:
    return ["".join(element.itertext()) for element in parse(svg).iter(f"{SVG}text")]


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (0, 37, [0, 10, 20, 30, 40]),
        (0, 1, [0, 0.25, 0.5, 0.75, 1]),
        (0.48, 0.56, [0.48, 0.5, 0.52, 0.54, 0.56]),
        (-3.1, 5.2, [-5, -2.5, 0, 2.5, 5, 7.5]),
    ],
)
def test_covering_ticks_are_round_and_enclose_the_range(low, high, expected):
    assert nice_ticks(low, high, 4, cover=True) == expected


def test_inner_ticks_stay_within_the_range():
    ticks = nice_ticks(-0.031, 0.052)
    assert ticks == [-0.02, 0.0, 0.02, 0.04]
    assert all(-0.031 <= tick <= 0.052 for tick in ticks)


def test_a_flat_range_still_gets_ticks_and_zero_is_never_negative():
    assert nice_ticks(5, 5, cover=True)[0] <= 5 < nice_ticks(5, 5, cover=True)[-1]
    assert all(math.copysign(1, tick) > 0 for tick in nice_ticks(-1, 1) if tick == 0)


def test_ticks_refuse_infinite_bounds():
    with pytest.raises(ValueError):
        nice_ticks(0, math.inf)


@pytest.mark.parametrize(
    ("value", "options", "expected"),
    [
        (1234, {}, "1,234"),
        (1234.56, {}, "1,234.6"),
        (0.12345, {}, "0.123"),
        (12500, {"unit": "ms", "compact": True}, "12.5 s"),
        (1250, {"unit": "ms", "compact": True}, "1.25 s"),
        (999, {"unit": "ms", "compact": True}, "999 ms"),
        (1500, {"unit": "ms"}, "1.5 s"),
        (2_500_000, {"compact": True}, "2.5M"),
        (2.5, {"unit": "%", "compact": True, "signed": True}, "+2.5%"),
        (-3, {"unit": "%", "compact": True, "signed": True}, "-3%"),
        (0, {"unit": "%", "compact": True, "signed": True}, "0%"),
    ],
)
def test_numbers_are_written_one_way_everywhere(value, options, expected):
    assert format_number(value, **options) == expected


def _minutes(*values):
    start = datetime(2026, 3, 2, 12, tzinfo=UTC)
    return [(start + timedelta(minutes=index), value) for index, value in enumerate(values)]


def test_every_text_of_every_chart_is_escaped():
    charts = [
        line_chart([(HOSTILE, _minutes(1, 2))], title=HOSTILE, x_label=HOSTILE),
        bar_chart([(HOSTILE, 3)], title=HOSTILE),
        interval_chart([Interval(HOSTILE, 1, 0, 2, "#000", HOSTILE)], title=HOSTILE, axis_label=HOSTILE),
        line_chart([], title=HOSTILE),
    ]
    for svg in charts:
        assert "<script" not in svg
        root = parse(svg)  # escaped text keeps the XML well-formed
        assert root.find(f"{SVG}title").text == HOSTILE


def test_a_line_chart_breaks_its_line_at_missing_values_and_marks_a_lone_point():
    svg = line_chart([("p95", _minutes(1, 2, None, 4))], title="latency", unit="ms")
    root = parse(svg)
    assert len(root.findall(f".//{SVG}polyline")) == 1  # the first two points
    assert len(root.findall(f".//{SVG}circle")) == 1  # the point after the gap
    assert "12:00" in texts(svg) and "p95" in texts(svg)


def test_a_line_chart_value_axis_starts_at_zero_and_ends_on_a_tick_above_the_data():
    labels = texts(line_chart([("errors", _minutes(3, 37))], title="t", unit="%"))
    assert "0%" in labels and "40%" in labels


def test_a_fitted_axis_follows_the_data_and_markers_carry_their_notes():
    days = [(date(2026, 3, day), 0.5 + day / 1000, f"{day} users") for day in (1, 2, 3)]
    svg = line_chart([("control", days)], title="t", from_zero=False, markers=True, show_title=False)
    root = parse(svg)
    assert "0%" not in texts(svg) and "0" not in texts(svg)
    tooltips = [circle.find(f"{SVG}title").text for circle in root.iter(f"{SVG}circle")]
    assert tooltips == ["control 2026-03-01: 0.501 (1 users)", "control 2026-03-02: 0.502 (2 users)",
                        "control 2026-03-03: 0.503 (3 users)"]  # fmt: skip
    assert [label for label in texts(svg) if label.startswith("03-")] == ["03-01", "03-02", "03-03"]


def test_an_empty_line_chart_says_so_under_its_title():
    assert texts(line_chart([("a", [(datetime.now(tz=UTC), None)])], title="Error rate")) == [
        "Error rate",
        "No data in this window.",
    ]


def test_bars_scale_to_the_largest_value_and_stop_at_the_limit():
    svg = bar_chart([(f"item {n}", n) for n in range(1, 30)], title="t", max_bars=5)
    widths = [float(rect.get("width")) for rect in parse(svg).iter(f"{SVG}rect")]
    assert len(widths) == 5
    assert widths[-1] == 360 and widths[0] == pytest.approx(72)


def test_interval_rows_are_drawn_around_the_reference_line():
    svg = interval_chart(
        [Interval("a", 2.0, -1.0, 5.0, "#111"), Interval("b", -3.0, -4.0, -2.0, "#222")],
        title="lift",
        axis_label="lift vs control",
        unit="%",
    )
    root = parse(svg)
    assert len(root.findall(f"{SVG}g")) == 2
    assert {"-2.5%", "0%", "+2.5%", "+5%", "lift vs control"} <= set(texts(svg))
    dashed = [line for line in root.iter(f"{SVG}line") if line.get("stroke-dasharray")]
    assert len(dashed) == 1
