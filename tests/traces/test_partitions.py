"""Partitions created by several processes at once (the first spans of a day reaching two workers)."""

from __future__ import annotations

import multiprocessing
import time
from datetime import date, timedelta

import pytest
from django.db import connection, connections

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="partitions exist on PostgreSQL only")

DAYS = [date(2031, 1, 1) + timedelta(days=number) for number in range(4)]
PROCESSES = 4


def _create(day: date, start_at: float, answers) -> None:
    from traces import partitions

    connections.close_all()  # the parent's connection is not this process's to use
    partitions.forget()
    connection.ensure_connection()
    while time.time() < start_at:  # all processes issue their CREATE at the same moment
        pass
    try:
        partitions.ensure_days([day])
        answers.put("ok")
    except Exception as exc:  # reported to the parent, which asserts on it
        answers.put(repr(exc))
    finally:
        connections.close_all()


@pytest.mark.django_db(transaction=True)
def test_processes_creating_the_same_day_at_once_all_succeed():
    from traces import partitions

    context = multiprocessing.get_context("fork")
    answers = context.Queue()
    connections.close_all()
    try:
        for day in DAYS:
            start_at = time.time() + 0.5
            processes = [context.Process(target=_create, args=(day, start_at, answers)) for _ in range(PROCESSES)]
            for process in processes:
                process.start()
            for process in processes:
                process.join(timeout=60)
        results = [answers.get(timeout=10) for _ in range(len(DAYS) * PROCESSES)]
        assert results == ["ok"] * len(results)
        assert set(DAYS) <= set(partitions.existing_days())
    finally:
        with connection.cursor() as cursor:
            for day in DAYS:
                for table, _column in reversed(partitions.PARTITIONED):
                    cursor.execute(f"DROP TABLE IF EXISTS {partitions.partition_name(table, day)}")
        partitions.forget()
