"""Minute and hour arithmetic on aware UTC datetimes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def floor_minute(value: datetime) -> datetime:
    return value.replace(second=0, microsecond=0)


def floor_hour(value: datetime) -> datetime:
    return value.replace(minute=0, second=0, microsecond=0)


def ceil_hour(value: datetime) -> datetime:
    floored = floor_hour(value)
    return floored if floored == value else floored + timedelta(hours=1)


def epoch(value: datetime) -> int:
    return int(value.timestamp())


def from_epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def floor_day(value: datetime) -> datetime:
    return value.replace(hour=0, minute=0, second=0, microsecond=0)


def ceil_day(value: datetime) -> datetime:
    floored = floor_day(value)
    return floored if floored == value else floored + timedelta(days=1)
