"""The stats page's two charts, drawn by ``agentplatform.charts``.

``forest_plot_svg``: each treatment's relative lift with its interval, one row per metric and
treatment. ``cumulative_chart_svg``: the cumulative per-user mean of the primary metric per
variant at the end of each day.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

from django.utils.safestring import SafeString

from agentplatform.charts import Interval, interval_chart, line_chart

GOOD = "#1a7f37"
BAD = "#cf222e"
NEUTRAL = "#6e7781"


def forest_plot_svg(
    comparisons: Sequence[Mapping], *, higher_is_better: Mapping[str, bool], width: int = 720
) -> SafeString:
    """Green: significantly better in the metric's direction; red: significantly worse; grey: not
    significant. The dashed line is no change."""
    rows = []
    for row in comparisons:
        if row.get("lift") is None or row.get("lift_ci_low") is None:
            continue
        gain = row["diff"] if higher_is_better.get(row["metric"], True) else -row["diff"]
        colour = NEUTRAL if not row["significant"] else (GOOD if gain > 0 else BAD)
        rows.append(
            Interval(
                label=f"{row['metric']} · {row['variant']}",
                estimate=row["lift"] * 100,
                low=row["lift_ci_low"] * 100,
                high=row["lift_ci_high"] * 100,
                colour=colour,
                tooltip=(
                    f"{row['variant']} on {row['metric']}: {row['lift'] * 100:+.2f}% "
                    f"[{row['lift_ci_low'] * 100:+.2f}%, {row['lift_ci_high'] * 100:+.2f}%]"
                ),
            )
        )
    return interval_chart(
        rows,
        title="Relative lift of each treatment against the control, with its interval",
        axis_label="lift vs control (interval: 95%, always-valid when sequential)",
        unit="%",
        css_class="forest-plot",
        row_class="forest-row",
        width=width,
        empty="No comparisons yet.",
    )


def cumulative_chart_svg(
    series: Mapping[str, Sequence[tuple[date, float, int]]], *, metric: str, width: int = 720, height: int = 280
) -> SafeString:
    return line_chart(
        [
            (variant, [(day, value, f"{users} users") for day, value, users in values])
            for variant, values in series.items()
        ],
        title=f"Cumulative {metric} per variant per day",
        css_class="cumulative-chart",
        width=width,
        height=height,
        from_zero=False,
        markers=True,
        show_title=False,
        x_label=f"day (UTC) · per-user mean of {metric} over all days so far",
        empty="No daily data yet.",
    )
