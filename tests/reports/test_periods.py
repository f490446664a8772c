from datetime import UTC, date, datetime

from agentplatform.scheduling.periods import period_containing, period_for_day

MOMENT = datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)


def test_periods_contain_the_moment_with_readable_keys():
    assert period_containing("minute", MOMENT).key == "2026-12-31T23:59"
    assert period_containing("quarter_hour", MOMENT).key == "2026-12-31T23:45"
    assert period_containing("day", MOMENT).key == "2026-12-31"
    assert period_containing("week", MOMENT).key == "2026-W53"
    assert period_containing("month", MOMENT).end == datetime(2027, 1, 1, tzinfo=UTC)


def test_previous_period_crosses_month_and_year_boundaries():
    january = period_for_day("month", date(2027, 1, 15))
    assert january.previous().key == "2026-12"
    assert period_for_day("day", date(2027, 1, 1)).previous().key == "2026-12-31"


def test_week_starts_on_monday():
    week = period_for_day("week", date(2026, 11, 27))  # a Friday
    assert week.start == datetime(2026, 11, 23, tzinfo=UTC)
    assert (week.end - week.start).days == 7
