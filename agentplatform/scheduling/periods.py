"""The period a job run covers: a UTC minute, quarter hour, day, ISO week or month.

Idempotency and locking are keyed by the period, so "the same run" is well defined: two beat
ticks in one minute, or a retried daily report, land on the same key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

MINUTE = "minute"
QUARTER_HOUR = "quarter_hour"
DAY = "day"
WEEK = "week"
MONTH = "month"
KINDS = (MINUTE, QUARTER_HOUR, DAY, WEEK, MONTH)


@dataclass(frozen=True)
class Period:
    kind: str
    start: datetime
    end: datetime

    @property
    def key(self) -> str:
        """A short, sortable label: 2026-11-27T14:05, 2026-11-27, 2026-W48, 2026-11."""
        if self.kind in (MINUTE, QUARTER_HOUR):
            return self.start.strftime("%Y-%m-%dT%H:%M")
        if self.kind == DAY:
            return self.start.strftime("%Y-%m-%d")
        if self.kind == WEEK:
            year, week, _ = self.start.isocalendar()
            return f"{year}-W{week:02d}"
        return self.start.strftime("%Y-%m")

    def previous(self) -> Period:
        return period_containing(self.kind, self.start - timedelta(microseconds=1))


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def period_containing(kind: str, moment: datetime) -> Period:
    """The period of ``kind`` that contains ``moment`` (converted to UTC)."""
    moment = moment.astimezone(UTC)
    if kind == MINUTE:
        start = moment.replace(second=0, microsecond=0)
        return Period(kind, start, start + timedelta(minutes=1))
    if kind == QUARTER_HOUR:
        start = moment.replace(minute=moment.minute - moment.minute % 15, second=0, microsecond=0)
        return Period(kind, start, start + timedelta(minutes=15))
    if kind == DAY:
        start = _midnight(moment.date())
        return Period(kind, start, start + timedelta(days=1))
    if kind == WEEK:
        start = _midnight(moment.date() - timedelta(days=moment.weekday()))
        return Period(kind, start, start + timedelta(days=7))
    if kind == MONTH:
        start = _midnight(moment.date().replace(day=1))
        end = _midnight((start + timedelta(days=32)).date().replace(day=1))
        return Period(kind, start, end)
    raise ValueError(f"unknown period kind {kind!r}")


def period_for_day(kind: str, day: date) -> Period:
    """The period of ``kind`` containing the UTC day ``day`` (what ``run_job --date`` selects)."""
    return period_containing(kind, _midnight(day))
