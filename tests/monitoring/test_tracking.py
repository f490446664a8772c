"""The timing middleware and ``monitoring.track`` record into the open minute."""

from __future__ import annotations

import asyncio

import pytest
from django.test import override_settings

import monitoring
from monitoring.recorder import HTTP_COUNTERS_KEY, recorder
from monitoring.store import get_store

pytestmark = pytest.mark.django_db


def _open(operation: str) -> dict[str, int]:
    recorder.flush()
    minutes = get_store().open_minutes(since_epoch=0, until_epoch=2**33, operation=operation)
    fields: dict[str, int] = {}
    for minute in minutes:
        for name, value in minute.fields.items():
            fields[name] = fields.get(name, 0) + value
    return fields


def test_track_as_context_manager_counts_one_success(store_name):
    with monitoring.track("rag.retrieve"):
        pass
    fields = _open("rag.retrieve")
    assert (fields["n"], fields.get("e", 0)) == (1, 0)


def test_track_counts_an_exception_as_an_error_and_lets_it_through(store_name):
    with pytest.raises(KeyError), monitoring.track("rag.retrieve"):
        raise KeyError("boom")
    assert _open("rag.retrieve")["e"] == 1


def test_track_decorates_sync_and_async_functions(store_name):
    @monitoring.track("sync.op")
    def double(x):
        return 2 * x

    @monitoring.track("async.op")
    async def triple(x):
        await asyncio.sleep(0)
        return 3 * x

    assert double(2) == 4
    assert asyncio.run(triple(2)) == 6
    assert _open("sync.op")["n"] == 1
    assert _open("async.op")["n"] == 1


def test_track_as_async_context_manager(store_name):
    async def work():
        async with monitoring.track("async.block"):
            await asyncio.sleep(0)

    asyncio.run(work())
    assert _open("async.block")["n"] == 1


@pytest.mark.parametrize("name", ["", "x" * 201, "a|b"])
def test_track_rejects_unusable_operation_names(name):
    with pytest.raises(ValueError):
        monitoring.track(name)


def test_the_middleware_times_requests_by_route_method_and_status_class(store_name, client):
    client.get("/healthz")
    client.get("/no/such/page")
    assert _open("http GET healthz")["n"] == 1
    counters = get_store().read(HTTP_COUNTERS_KEY)
    assert counters["GET\thealthz\t2xx"] == 1
    assert counters["GET\t<unmatched>\t4xx"] == 1


def test_the_middleware_can_be_switched_off(store_name, client, settings):
    settings.MONITORING_TIMING_ENABLED = False
    client.get("/healthz")
    assert _open("http GET healthz") == {}


@override_settings(ROOT_URLCONF="tests.monitoring.urls_bench")
def test_the_middleware_skips_views_that_declare_request_timing_false(store_name, client):
    assert client.get("/api/v1/bench/noop-untimed").status_code == 200
    assert client.get("/api/v1/bench/noop").status_code == 200
    assert _open("http GET bench-noop-untimed") == {}
    assert _open("http GET bench-noop")["n"] == 1


def test_platform_counters_reach_the_shared_store(store_name):
    from agentplatform import counters
    from monitoring.recorder import PLATFORM_COUNTERS_KEY

    counters.increment("ratelimit_fallback_total", group="prompts.resolve")
    recorder.flush()
    assert get_store().read(PLATFORM_COUNTERS_KEY) == {'["ratelimit_fallback_total",[["group","prompts.resolve"]]]': 1}


def test_a_failed_flush_is_dropped_and_counted(monkeypatch, store_name):
    class Broken:
        def add(self, increments):
            raise ConnectionError("down")

    monkeypatch.setattr("monitoring.recorder.get_store", lambda: Broken())
    recorder.observe("x", 1.0)
    before = recorder.dropped_flushes
    assert recorder.flush() == 0
    assert recorder.dropped_flushes == before + 1
