"""Writing reports: the daily report, creator analytics and the audit export's record.

Each report is one ``Report`` row per kind and period, written with ``update_or_create``: running
a period again (``run_job --force``) replaces its report, never adds a second one.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from agentplatform.errors import ValidationFailed
from agentplatform.scheduling import periods
from reports import sections
from reports.models import Report, ReportKind


def _period_label(kind: str, start: datetime, end: datetime) -> str:
    if kind == ReportKind.DAILY:
        return start.strftime("%Y-%m-%d")
    if kind == ReportKind.CREATOR_ANALYTICS and end - start == timedelta(days=7) and start.weekday() == 0:
        return periods.period_containing(periods.WEEK, start).key
    if kind == ReportKind.AUDIT_EXPORT and periods.period_containing(periods.MONTH, start).end == end:
        return start.strftime("%Y-%m")
    return f"{start:%Y-%m-%d}..{end:%Y-%m-%d}"


def report_save(*, kind: str, start: datetime, end: datetime, data: dict, file_name: str = "") -> Report:
    """Creates or replaces the report of ``kind`` for ``[start, end)``."""
    if end <= start:
        raise ValidationFailed("A report period must end after it starts.", details={"start": start, "end": end})
    with transaction.atomic():
        report, _ = Report.objects.update_or_create(
            kind=kind,
            period_start=start,
            period_end=end,
            defaults={"period": _period_label(kind, start, end), "data": data, "file": file_name},
        )
    return report


def _envelope(start: datetime, end: datetime, body: dict) -> dict:
    return {
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "generated_at": timezone.now().isoformat(),
        **body,
    }


def daily_report(*, day: date) -> Report:
    """Writes the daily report of the UTC day ``day``."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    built = {name: section(start=start, end=end) for name, section in sections.DAILY_SECTIONS.items()}
    return report_save(kind=ReportKind.DAILY, start=start, end=end, data=_envelope(start, end, {"sections": built}))


def creator_analytics(*, start: datetime, end: datetime) -> Report:
    """Writes per-creator and per-agent analytics of ``[start, end)``."""
    built = {
        "creators": sections.section_creators(start=start, end=end, limit=settings.REPORTS_MAX_CREATORS),
        "agents": sections.section_agents(start=start, end=end),
    }
    return report_save(
        kind=ReportKind.CREATOR_ANALYTICS, start=start, end=end, data=_envelope(start, end, {"sections": built})
    )


def audit_export_report(*, start: datetime, end: datetime) -> Report:
    """Exports the audit events of ``[start, end)`` to a file (audit's service) and lists it as a report."""
    from audit.retention import audit_export_period

    result = audit_export_period(start=start, end=end)
    file_name, summary = _export_file(result)
    return report_save(
        kind=ReportKind.AUDIT_EXPORT,
        start=start,
        end=end,
        data=_envelope(start, end, {"sections": {"export": {"available": True, **summary}}}),
        file_name=file_name,
    )


def _export_file(result) -> tuple[str, dict]:
    """The stored file name (relative to MEDIA_ROOT) and a JSON summary of what the export returned."""
    path = None
    summary: dict = {}
    if isinstance(result, dict):
        path = result.get("path") or result.get("file")
        summary = {k: v for k, v in result.items() if isinstance(v, str | int | float | bool) and k not in ("path",)}
    elif isinstance(result, str | Path):
        path = result
    else:
        path = getattr(result, "path", None) or getattr(result, "file", None)
        for attribute, key in (("row_count", "rows"), ("rows", "rows"), ("size_bytes", "size_bytes"), ("pk", "id")):
            value = getattr(result, attribute, None)
            if isinstance(value, int) and key not in summary:
                summary[key] = value
    if path is None:
        return "", summary
    name = str(getattr(path, "name", path))
    media_root = str(settings.MEDIA_ROOT).rstrip("/") + "/"
    if name.startswith(media_root):
        name = name[len(media_root) :]
    summary["file"] = name
    return name, summary
