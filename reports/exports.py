"""CSV and JSON downloads of job runs and reports (CSV cells neutralised against formulas)."""

from __future__ import annotations

import json
from collections.abc import Iterator

from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpResponse, StreamingHttpResponse

from agentplatform.exports import stream_csv
from reports.models import JobRun, Report

JOBRUN_HEADER = (
    "id",
    "job",
    "period",
    "scope",
    "trigger",
    "outcome",
    "started_at",
    "finished_at",
    "duration_seconds",
    "attempts",
    "rows_affected",
    "error_summary",
    "request_id",
    "task_id",
)


def jobrun_cells(run: JobRun) -> tuple:
    return (
        run.pk,
        run.job,
        run.period,
        run.scope,
        run.trigger,
        run.outcome,
        run.started_at,
        run.finished_at,
        run.duration_seconds,
        run.attempts,
        run.rows_affected,
        run.error_summary,
        run.request_id,
        run.task_id,
    )


def _flatten(value, path: str) -> Iterator[tuple[str, object]]:
    if isinstance(value, dict):
        if not value:
            yield path, ""
        for key, item in value.items():
            yield from _flatten(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        if not value:
            yield path, ""
        for index, item in enumerate(value):
            yield from _flatten(item, f"{path}[{index}]")
    else:
        yield path, value


def report_rows(report: Report) -> Iterator[tuple[str, str, object]]:
    """(section, metric path, value) for every leaf of the report's data, in document order."""
    for section, body in report.data.get("sections", {}).items():
        for path, value in _flatten(body, ""):
            yield section, path, value


def report_csv_response(report: Report) -> StreamingHttpResponse:
    return stream_csv(
        report_rows(report), ("section", "metric", "value"), filename=f"report-{report.kind}-{report.period}.csv"
    )


def report_json_document(report: Report) -> dict:
    return {
        "id": report.pk,
        "kind": report.kind,
        "period": report.period,
        "period_start": report.period_start,
        "period_end": report.period_end,
        "created_at": report.created_at,
        "updated_at": report.updated_at,
        "file": report.file.name or None,
        "data": report.data,
    }


def report_json_response(report: Report) -> HttpResponse:
    safe_period = "".join(ch for ch in report.period if ch.isalnum() or ch in ".-_")
    response = HttpResponse(
        json.dumps(report_json_document(report), cls=DjangoJSONEncoder, indent=2),
        content_type="application/json",
    )
    response["Content-Disposition"] = f'attachment; filename="report-{report.kind}-{safe_period}.json"'
    response["Cache-Control"] = "no-store"
    return response
