"""Server-rendered SVG bar charts for the report page (no script, no CDN).

Every label and value is escaped; the SVG is built from numbers the report already holds.
"""

from __future__ import annotations

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

BAR_HEIGHT = 18
GAP = 6
LABEL_WIDTH = 220
BAR_WIDTH = 360
VALUE_WIDTH = 80
# Bars drawn per chart; the rest are in the tables and downloads.
MAX_BARS = 20


def _number(value: float) -> str:
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.3g}" if abs(value) < 1 else f"{value:,.1f}"
    return f"{int(value):,}"


def bar_chart(items: list[tuple[str, float]], *, title: str) -> SafeString:
    """A horizontal bar chart of (label, value) pairs, largest scale = largest value."""
    items = [(str(label), float(value)) for label, value in items if value is not None][:MAX_BARS]
    height = max(1, len(items)) * (BAR_HEIGHT + GAP) + GAP
    width = LABEL_WIDTH + BAR_WIDTH + VALUE_WIDTH
    top = max((value for _, value in items), default=0) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" class="report-chart"><title>{escape(title)}</title>'
    ]
    if not items:
        parts.append(f'<text x="0" y="{BAR_HEIGHT}" font-size="12" fill="#666">no data</text>')
    for index, (label, value) in enumerate(items):
        y = GAP + index * (BAR_HEIGHT + GAP)
        bar = max(1.0, BAR_WIDTH * value / top) if value > 0 else 0
        text_y = y + BAR_HEIGHT - 5
        shown = label if len(label) <= 32 else label[:31] + "…"
        parts.append(
            f'<text x="{LABEL_WIDTH - 6}" y="{text_y}" font-size="12" text-anchor="end" fill="#333">'
            f"{escape(shown)}</text>"
            f'<rect x="{LABEL_WIDTH}" y="{y}" width="{bar:.1f}" height="{BAR_HEIGHT}" fill="#417690">'
            f"<title>{escape(label)}: {escape(_number(value))}</title></rect>"
            f'<text x="{LABEL_WIDTH + bar + 4:.1f}" y="{text_y}" font-size="12" fill="#333">'
            f"{escape(_number(value))}</text>"
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every interpolated string above is escaped


def _section(data: dict, name: str) -> dict:
    section = data.get("sections", {}).get(name) or {}
    return section if section.get("available") else {}


def report_charts(data: dict) -> list[dict]:
    """The charts of one report's data: [{"title", "svg"}], only for sections that have data."""
    charts: list[tuple[str, list[tuple[str, float]]]] = []
    audit = _section(data, "audit")
    if audit:
        charts.append(("Audit events by action", [(r["action"], r["events"]) for r in audit.get("by_action", [])]))
        charts.append(("Audit events by severity", list(audit.get("by_severity", {}).items())))
    experiments = _section(data, "experiments")
    for experiment in experiments.get("running", []):
        charts.append(
            (
                f"Results by variant: {experiment['key']}",
                [(key, variant["results"]) for key, variant in experiment.get("variants", {}).items()],
            )
        )
    monitoring = _section(data, "monitoring")
    if monitoring.get("operations"):
        charts.append(
            (
                "p95 latency (ms) of the busiest operations",
                [(op.get("operation", "?"), op.get("p95_ms") or 0) for op in monitoring["operations"]],
            )
        )
    jobs = _section(data, "jobs")
    if jobs:
        charts.append(("Job runs by outcome", list(jobs.get("by_outcome", {}).items())))
    creators = _section(data, "creators")
    if creators:
        top = sorted(creators.get("creators", {}).items(), key=lambda item: -item[1]["results"])
        charts.append(("Results per creator (top 20)", [(user, entry["results"]) for user, entry in top]))
    agents = _section(data, "agents")
    if agents:
        charts.append(
            ("Events per agent", [(name, entry["events"]) for name, entry in agents.get("agents", {}).items()])
        )
    return [{"title": title, "svg": bar_chart(items, title=title)} for title, items in charts]
