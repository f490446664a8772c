import asyncio
import datetime as dt
import json
import threading

import httpx
import pytest
import time_machine
from django.conf import settings
from django.test import override_settings

from agentplatform import counters
from agentplatform.breakers import (
    CircuitOpen,
    breakers_info,
    flush_transitions,
    get_breaker,
    parse_retry_after,
)
from agentplatform.errors import DependencyUnavailable, ValidationFailed
from agentplatform.http import build_async_client, build_client
from agentplatform.models import BreakerTransition
from tests.agentplatform.conftest import free_port, start_redis_server, stop_redis_server
from tests.conftest import run_python

pytestmark = pytest.mark.usefixtures("fresh_breakers")

needs_redis = pytest.mark.skipif(not settings.REDIS_URL, reason="shared breaker state needs Redis")

BREAKERS = {
    "default": {"fail_max": 3, "reset_timeout": 30, "success_threshold": 1, "max_retry_after": 300},
    "picky": {"success_threshold": 2},
}
T0 = dt.datetime(2026, 3, 2, 12, 0, 0, tzinfo=dt.UTC)


def _get(client: httpx.Client, path: str) -> httpx.Response:
    response = client.get(path)
    response.raise_for_status()
    return response


def _fail(breaker, client, times, path="/status/500"):
    for _ in range(times):
        with pytest.raises(httpx.HTTPStatusError):
            breaker.call(_get, client, path)


@pytest.fixture
def client(upstream):
    with build_client(base_url=upstream.url) as client:
        yield client


@override_settings(CIRCUIT_BREAKERS=BREAKERS)
def test_breaker_opens_after_fail_max_failures(client):
    breaker = get_breaker("search")
    _fail(breaker, client, 2)
    assert breaker.state == "closed"
    _fail(breaker, client, 1)
    assert breaker.state == "open"


@override_settings(CIRCUIT_BREAKERS=BREAKERS)
def test_open_breaker_fails_fast_without_calling_the_upstream(client, upstream):
    breaker = get_breaker("search")
    _fail(breaker, client, 3)
    calls_before = len(upstream.received)
    with pytest.raises(CircuitOpen) as caught:
        breaker.call(_get, client, "/ok")
    assert len(upstream.received) == calls_before
    assert isinstance(caught.value, DependencyUnavailable)
    assert caught.value.status_code == 503
    assert 1 <= caught.value.retry_after <= 30
    assert caught.value.details == {"dependency": "search", "reason": "circuit_open"}


@override_settings(CIRCUIT_BREAKERS=BREAKERS)
def test_breaker_half_opens_after_reset_timeout_and_closes_on_success(client):
    breaker = get_breaker("search")
    with time_machine.travel(T0, tick=False) as clock:
        _fail(breaker, client, 3)
        clock.shift(29)
        with pytest.raises(CircuitOpen):
            breaker.call(_get, client, "/ok")
        clock.shift(2)
        seen_during_trial = breaker.call(lambda: breaker.state)
    assert seen_during_trial == "half-open"
    assert breaker.state == "closed"


@override_settings(CIRCUIT_BREAKERS=BREAKERS)
def test_failed_trial_call_reopens_the_breaker(client):
    breaker = get_breaker("search")
    with time_machine.travel(T0, tick=False) as clock:
        _fail(breaker, client, 3)
        clock.shift(31)
        _fail(breaker, client, 1)
        assert breaker.state == "open"
        with pytest.raises(CircuitOpen):
            breaker.call(_get, client, "/ok")


@override_settings(CIRCUIT_BREAKERS=BREAKERS)
def test_success_threshold_needs_that_many_successful_trials(client):
    breaker = get_breaker("picky")
    with time_machine.travel(T0, tick=False) as clock:
        _fail(breaker, client, 3)
        clock.shift(31)
        breaker.call(_get, client, "/ok")
        assert breaker.state == "half-open"
        breaker.call(_get, client, "/ok")
    assert breaker.state == "closed"


@override_settings(CIRCUIT_BREAKERS=BREAKERS)
def test_upstream_client_errors_do_not_count(client):
    breaker = get_breaker("search")
    _fail(breaker, client, 10, path="/status/404")
    with pytest.raises(ValidationFailed):
        breaker.call(lambda: (_ for _ in ()).throw(ValidationFailed("bad target")))
    assert breaker.state == "closed"
    assert breaker.fail_counter == 0


@override_settings(CIRCUIT_BREAKERS=BREAKERS)
def test_a_success_resets_the_consecutive_failure_count(client):
    breaker = get_breaker("search")
    _fail(breaker, client, 2)
    breaker.call(_get, client, "/ok")
    _fail(breaker, client, 2)
    assert breaker.state == "closed"


@override_settings(CIRCUIT_BREAKERS=BREAKERS)
def test_upstream_retry_after_opens_the_breaker_for_that_long(client):
    breaker = get_breaker("search")
    with time_machine.travel(T0, tick=False) as clock:
        _fail(breaker, client, 1, path="/status/429?retry_after=120")
        assert breaker.state == "open"
        clock.shift(100)  # past reset_timeout (30 s), inside the upstream's 120 s
        with pytest.raises(CircuitOpen) as caught:
            breaker.call(_get, client, "/ok")
        assert caught.value.retry_after == 20
        clock.shift(21)
        breaker.call(_get, client, "/ok")
    assert breaker.state == "closed"


@override_settings(CIRCUIT_BREAKERS={**BREAKERS, "default": {**BREAKERS["default"], "max_retry_after": 60}})
def test_upstream_retry_after_is_bounded(client):
    breaker = get_breaker("search")
    with time_machine.travel(T0, tick=False) as clock:
        _fail(breaker, client, 1, path="/status/503?retry_after=86400")
        clock.shift(61)
        breaker.call(_get, client, "/ok")
    assert breaker.state == "closed"


@pytest.mark.django_db(transaction=True)
@override_settings(CIRCUIT_BREAKERS=BREAKERS)
def test_every_transition_is_recorded_with_the_last_error(client):
    breaker = get_breaker("search")
    with time_machine.travel(T0, tick=False) as clock:
        _fail(breaker, client, 3)
        clock.shift(31)
        breaker.call(_get, client, "/ok")
    flush_transitions()
    rows = list(BreakerTransition.objects.filter(breaker="search").order_by("at", "id"))
    assert [(row.from_state, row.to_state) for row in rows] == [
        ("closed", "open"),
        ("open", "half-open"),
        ("half-open", "closed"),
    ]
    assert "HTTPStatusError" in rows[0].last_error and "500" in rows[0].last_error
    assert rows[0].at == T0


@override_settings(CIRCUIT_BREAKERS=BREAKERS)
def test_async_failures_inside_await_count(upstream):
    async def scenario():
        breaker = get_breaker("async-search")
        async with build_async_client(base_url=upstream.url) as client:

            async def fetch(path):
                response = await client.get(path)
                response.raise_for_status()
                return response

            for _ in range(3):
                with pytest.raises(httpx.HTTPStatusError):
                    await breaker.call_async(fetch, "/status/502")
            with pytest.raises(CircuitOpen):
                await breaker.call_async(fetch, "/ok")
        return breaker.state

    assert asyncio.run(scenario()) == "open"


@override_settings(CIRCUIT_BREAKERS=BREAKERS)
def test_cancelled_async_calls_do_not_count(upstream):
    async def scenario():
        breaker = get_breaker("cancelled")
        async with build_async_client(base_url=upstream.url) as client:
            for _ in range(5):
                task = asyncio.ensure_future(breaker.call_async(client.get, "/slow"))
                await asyncio.sleep(0)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
        return breaker.state, breaker.fail_counter

    try:
        assert asyncio.run(scenario()) == ("closed", 0)
    finally:
        upstream.release.set()


@override_settings(CIRCUIT_BREAKERS=BREAKERS)
def test_slow_upstream_behind_one_breaker_does_not_stall_another_async(upstream):
    async def scenario():
        async with build_async_client(base_url=upstream.url) as client:
            slow = asyncio.ensure_future(get_breaker("slow").call_async(client.get, "/slow"))
            await asyncio.to_thread(upstream.slow_entered.wait, 10)
            fast = await get_breaker("fast").call_async(client.get, "/ok")
            still_waiting = not slow.done()
            upstream.release.set()
            await slow
        return fast.status_code, still_waiting

    assert asyncio.run(scenario()) == (200, True)


@override_settings(CIRCUIT_BREAKERS=BREAKERS)
def test_slow_upstream_does_not_stall_other_threads_calls(upstream):
    client = build_client(base_url=upstream.url)
    slow = threading.Thread(target=lambda: get_breaker("slow").call(client.get, "/slow"))
    slow.start()
    try:
        assert upstream.slow_entered.wait(10)
        # The same breaker too: no lock is held during the guarded call (pybreaker would hold one).
        assert get_breaker("fast").call(client.get, "/ok").status_code == 200
        assert get_breaker("slow").call(client.get, "/ok").status_code == 200
        assert slow.is_alive()
    finally:
        upstream.release.set()
        slow.join(10)
        client.close()


@override_settings(CIRCUIT_BREAKERS=BREAKERS, CIRCUIT_BREAKER_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
def test_with_redis_unreachable_the_breaker_still_opens_locally(client):
    before = counters.value("breaker_storage_fallback_total", breaker="search")
    breaker = get_breaker("search")
    assert breaker.state == "closed"  # no error at creation or first use
    _fail(breaker, client, 3)
    assert breaker.state == "open"
    assert breaker.storage_mode == "local"
    with pytest.raises(CircuitOpen):
        breaker.call(_get, client, "/ok")
    assert counters.value("breaker_storage_fallback_total", breaker="search") == before + 1


@override_settings(CIRCUIT_BREAKERS=BREAKERS, CIRCUIT_BREAKER_REDIS_URL="")
def test_without_redis_configured_each_process_keeps_its_own_state(client):
    breaker = get_breaker("search")
    _fail(breaker, client, 3)
    assert (breaker.state, breaker.storage_mode) == ("open", "local-only")


_CHILD = """
import django, json
django.setup()
from django.test.utils import override_settings
from agentplatform import breakers
breakers._record = lambda fields: None  # the parent's test database is not this process's
with override_settings(CIRCUIT_BREAKERS=json.loads({config!r})):
    breaker = breakers.get_breaker("shared-search")
    state_before = breaker.state
    if {trip!r}:
        for _ in range(3):
            try:
                breaker.call(lambda: 1 / 0)
            except ZeroDivisionError:
                pass
    print(json.dumps([state_before, breaker.state, breaker.storage_mode]))
"""


def _child(*, trip: bool) -> list[str]:
    code = _CHILD.format(config=json.dumps(BREAKERS), trip=trip)
    result = run_python(
        code, env={"DJANGO_SETTINGS_MODULE": "agentplatform.settings_test", "REDIS_URL": settings.REDIS_URL}
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@needs_redis
@override_settings(CIRCUIT_BREAKERS=BREAKERS)
def test_two_processes_see_the_same_state_through_redis(client):
    assert _child(trip=True) == ["closed", "open", "shared"]
    breaker = get_breaker("shared-search")
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen):
        breaker.call(_get, client, "/ok")
    breaker.reset()
    assert _child(trip=False)[0] == "closed"


@needs_redis
@override_settings(CIRCUIT_BREAKERS=BREAKERS)
def test_a_breaker_opened_here_is_open_in_another_process(client):
    _fail(get_breaker("shared-search"), client, 3)
    assert _child(trip=False)[0] == "open"


@pytest.mark.parametrize(
    ("header", "expected"),
    [("120", 120.0), ("0", 0.0), ("", None), (None, None), ("soon", None), ("-5", None)],
)
def test_parse_retry_after_seconds(header, expected):
    assert parse_retry_after(header) == expected


def test_parse_retry_after_http_date():
    now = dt.datetime(2026, 3, 2, 12, 0, 0, tzinfo=dt.UTC).timestamp()
    assert parse_retry_after("Mon, 02 Mar 2026 12:01:30 GMT", now=now) == 90.0


@override_settings(CIRCUIT_BREAKERS={**BREAKERS, "configured-one": {"fail_max": 1}})
def test_breakers_info_lists_configured_and_used_breakers_for_readyz(client):
    _fail(get_breaker("used-one"), client, 3)
    info = breakers_info()
    assert info["used-one"]["state"] == "open"
    assert info["configured-one"]["state"] == "closed"
    assert "default" not in info


def test_breaker_falls_back_while_redis_is_down_and_shares_again_once_it_is_back(client, settings):
    port = free_port()
    server = start_redis_server(port)
    settings.CIRCUIT_BREAKERS = BREAKERS
    settings.CIRCUIT_BREAKER_REDIS_URL = f"redis://127.0.0.1:{port}/0"
    settings.CIRCUIT_BREAKER_REDIS_RETRY_SECONDS = 0
    try:
        breaker = get_breaker("flaky-redis")
        assert (breaker.state, breaker.storage_mode) == ("closed", "shared")
        stop_redis_server(server)
        _fail(breaker, client, 3)
        assert (breaker.state, breaker.storage_mode) == ("open", "local")
        server = start_redis_server(port)
        assert breaker.state == "closed"  # the shared state (this Redis restarted empty) rules again
        assert breaker.storage_mode == "shared"
    finally:
        stop_redis_server(server)
