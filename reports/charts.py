"""The report page's charts: which numbers of a report are drawn, as ``agentplatform.charts`` bars."""

from __future__ import annotations

from agentplatform.charts import bar_chart

# Bars drawn per chart; the rest are in the tables and downloads.
MAX_BARS = 20


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
    return [
        {"title": title, "svg": bar_chart(items, title=title, css_class="report-chart", max_bars=MAX_BARS)}
        for title, items in charts
    ]
