"""Acknowledged operations are written to PostgreSQL by each process's writer, never kept in Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitoring.models import OperationDay, OperationHour, OperationMinute, SeenEvent
from monitoring.operations import (
    ITEM_ID_PREFIX,
    operations_buffered,
    operations_flush,
    operations_store,
    operations_writer_stop,
)
from monitoring.store import minute_key
from tests.reliability.faults import PrivateRedis

OPERATIONS_URL = "/api/v1/monitoring/operations"
PRIVATE_REDIS_PORT = 6390


def _operation(**overrides) -> dict:
    row = {
        "operation": "rag.retrieve",
        "duration_ms": 12.5,
        "success": True,
        "occurred_at": (datetime.now(UTC) - timedelta(minutes=2)).isoformat(),
    }
    row.update(overrides)
    return row


@pytest.fixture
def volatile_redis(tmp_path, settings):
    """A private redis-server on port 6390 with no persistence at all, as the metrics store."""
    redis = PrivateRedis(tmp_path, persistent=False)
    redis.port = PRIVATE_REDIS_PORT
    redis.start()
    settings.MONITORING_STORE = "redis"
    settings.REDIS_URL = redis.url
    yield redis
    redis.stop()


@pytest.fixture
def threaded_operations_writer(settings):
    """Operations written by this process's writer thread, as in production, on a long interval so
    they are still pending when Redis goes."""
    operations_writer_stop(timeout=0)
    settings.MONITORING_OPERATIONS_BACKGROUND_FLUSH = True
    settings.MONITORING_OPERATIONS_FLUSH_SECONDS = 3600
    yield
    operations_writer_stop(timeout=5)


@pytest.mark.django_db(transaction=True)
def test_operations_acknowledged_before_a_redis_restart_without_persistence_are_all_stored(
    volatile_redis, threaded_operations_writer, agent_client
):
    with_ids = {"operations": [_operation(event_id=f"e-{n}") for n in range(3)]}
    without_ids = {"operations": [_operation(duration_ms=40.0, success=False)] * 2}
    for body, accepted in ((with_ids, 3), (without_ids, 2)):
        response = agent_client.post(OPERATIONS_URL, body, format="json")
        assert response.status_code == 200, response.content
        assert response.json()["accepted"] == accepted
    assert operations_buffered() == 2  # two requests acknowledged, not yet in the database
    assert not OperationMinute.objects.exists()

    volatile_redis.shutdown_nosave()
    volatile_redis.start()  # empty

    operations_flush()
    minute = OperationMinute.objects.get(operation="rag.retrieve")
    assert (minute.count, minute.errors) == (5, 2)
    assert OperationHour.objects.get().count == OperationDay.objects.get().count == 5


@pytest.mark.django_db
def test_a_retried_write_whose_commit_went_through_counts_nothing_twice():
    minute = int((datetime.now(UTC) - timedelta(minutes=1)).timestamp()) // 60 * 60
    item = (ITEM_ID_PREFIX + "one-request", {minute_key(minute, "llm.call"): {"n": 2, "e": 0, "s": 9000, "7": 2}})
    operations_store([item])
    operations_store([item])  # the writer's retry after a lost acknowledgement
    assert OperationMinute.objects.get().count == 2
    assert SeenEvent.objects.filter(event_id=item[0]).exists()


@pytest.mark.django_db
def test_writes_for_the_same_minute_add_up(agent_client):
    for _ in range(3):
        agent_client.post(OPERATIONS_URL, {"operations": [_operation()] * 2}, format="json")
    assert OperationMinute.objects.get().count == 6
    assert OperationHour.objects.get().count == 6


@pytest.mark.django_db(transaction=True)
def test_writers_of_many_processes_add_into_the_same_new_rows_without_colliding():
    # Each thread stands for another process's writer: all create the same minute, hour and day rows.
    import threading

    from django.db import connection

    minute = int((datetime.now(UTC) - timedelta(minutes=1)).timestamp()) // 60 * 60
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def write(number: int) -> None:
        try:
            start.wait()
            increments = {minute_key(minute, "llm.call"): {"n": 1, "e": 0, "s": 1000, "5": 1}}
            operations_store([(f"{ITEM_ID_PREFIX}thread-{number}", increments)])
        except BaseException as error:  # re-raised below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert OperationMinute.objects.get().count == OperationHour.objects.get().count == 8
    assert OperationMinute.objects.get().buckets == {"5": 8}
