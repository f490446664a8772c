import datetime as dt
import threading

import pytest
import time_machine
from django.conf import settings
from django.core.checks import run_checks
from django.test import Client, RequestFactory, override_settings

from agentplatform import counters, ratelimit
from agentplatform.errors import RateLimited
from agentplatform.ratelimit import enforce, identity_key
from tests.agentplatform.conftest import free_port

URLS = "tests.agentplatform.urls_cross"
RATES = {**settings.RATE_LIMITS, "test.tiny": "2/m", "test.twenty": "20/m", "auth.test": "2/m"}
T0 = dt.datetime(2026, 3, 2, 12, 0, 7, tzinfo=dt.UTC)
ENVELOPE_KEYS = {"code", "message", "details", "request_id"}


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.ROOT_URLCONF = URLS
    settings.RATE_LIMITS = RATES
    settings.RATELIMIT_ENABLE = True
    ratelimit.reset_fallback_state()
    yield
    ratelimit.reset_fallback_state()


@pytest.fixture
def clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def _seconds_to_window_end(key: str, period: int = 60, group: str = "test.tiny") -> int:
    return ratelimit.window_of(ratelimit.bucket(group, key), period) + 1 - int(T0.timestamp())


def _stored_count(group: str, key: str, period: int = 60) -> int:
    """The count another process would read: the shared cache's value for the current window."""
    from django.core.cache import cache

    counter = ratelimit.bucket(group, key)
    return cache.get(f"{counter}:{ratelimit.window_of(counter, period)}")


def test_tiny_limit_answers_200_200_then_429_with_retry_after(client, clock):
    statuses = [client.get("/api/v1/test/tiny").status_code for _ in range(2)]
    response = client.get("/api/v1/test/tiny", HTTP_X_REQUEST_ID="trace-429")
    assert statuses == [200, 200]
    assert response.status_code == 429
    error = response.json()["error"]
    assert set(error) == ENVELOPE_KEYS
    assert (error["code"], error["request_id"]) == ("rate_limited", "trace-429")
    assert int(response["Retry-After"]) == _seconds_to_window_end("ip:127.0.0.1")
    assert error["details"]["retry_after"] == int(response["Retry-After"])


def test_the_budget_returns_when_the_window_ends(client, clock):
    for _ in range(3):
        client.get("/api/v1/test/tiny")
    clock.shift(_seconds_to_window_end("ip:127.0.0.1"))
    assert client.get("/api/v1/test/tiny").status_code == 200


def test_two_identities_have_separate_budgets(client, clock):
    for key in ("1", "2"):
        statuses = [client.get("/api/v1/test/tiny", HTTP_AUTHORIZATION=f"Test-Key {key}").status_code for _ in range(3)]
        assert statuses == [200, 200, 429]


def test_an_identity_keeps_its_budget_across_ip_addresses(client, clock):
    for address in ("198.51.100.1", "198.51.100.2"):
        client.get("/api/v1/test/tiny", HTTP_AUTHORIZATION="Test-Key 7", REMOTE_ADDR=address)
    response = client.get("/api/v1/test/tiny", HTTP_AUTHORIZATION="Test-Key 7", REMOTE_ADDR="198.51.100.3")
    assert response.status_code == 429


def test_two_ip_addresses_have_separate_budgets(client, clock):
    for address in ("198.51.100.1", "198.51.100.2"):
        statuses = [client.get("/api/v1/test/tiny", REMOTE_ADDR=address).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]


@override_settings(TRUSTED_PROXY_COUNT=0)
def test_invented_forwarded_for_values_do_not_buy_fresh_budgets(client, clock):
    statuses = [client.get("/api/v1/test/tiny", HTTP_X_FORWARDED_FOR=f"203.0.113.{n}").status_code for n in range(3)]
    assert statuses == [200, 200, 429]


def test_views_without_a_group_are_not_limited(client, clock):
    assert {client.get("/api/v1/test/unlimited").status_code for _ in range(5)} == {200}


def test_rate_limiting_can_be_switched_off(client, clock, settings):
    settings.RATELIMIT_ENABLE = False
    assert {client.get("/api/v1/test/tiny").status_code for _ in range(5)} == {200}


def test_fifty_concurrent_requests_against_a_limit_of_twenty_let_exactly_twenty_through(clock):
    start = threading.Barrier(50)
    statuses: list[int] = []
    lock = threading.Lock()

    def one_request():
        local_client = Client()
        start.wait()
        status = local_client.get("/api/v1/test/twenty").status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=one_request) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(statuses).count(200) == 20
    assert sorted(statuses).count(429) == 30


def test_enforce_counts_atomically_under_concurrency(clock):
    start = threading.Barrier(50)
    allowed = []

    def one_call():
        start.wait()
        try:
            enforce("test.twenty", "apikey:shared")
        except RateLimited:
            return
        allowed.append(1)

    threads = [threading.Thread(target=one_call) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(allowed) == 20


def test_counts_are_shared_through_the_cache_under_drf_s_key_format(clock):
    enforce("test.twenty", "user:5")
    enforce("test.twenty", "user:5")
    assert ratelimit.bucket("test.twenty", "user:5") == "throttle_test.twenty_user:5"  # DRF's cache_format
    assert _stored_count("test.twenty", "user:5") == 2


def test_windows_are_fixed_and_shifted_per_key(clock):
    first, second = ratelimit.bucket("test.tiny", "ip:a"), ratelimit.bucket("test.tiny", "ip:b")
    now = int(T0.timestamp())
    for counter in (first, second):
        window = ratelimit.window_of(counter, 60)
        assert now <= window < now + 60
        clock.shift(window + 1 - now)  # the next second is in the next window, 60 s later
        assert ratelimit.window_of(counter, 60) == window + 60
        clock.move_to(T0)
    assert {ratelimit.window_of(ratelimit.bucket("test.tiny", f"ip:{n}"), 60) for n in range(20)} != {
        ratelimit.window_of(first, 60)
    }


def test_rates_take_a_period_multiplier():
    assert ratelimit.parse_rate("6000/m") == (6000, 60)
    assert ratelimit.parse_rate("10/5m") == (10, 300)
    assert ratelimit.parse_rate("3/2h") == (3, 7200)


def test_identity_prefers_the_api_key_then_the_user_then_the_ip():
    from types import SimpleNamespace

    from accounts.models import User

    request = RequestFactory().get("/", REMOTE_ADDR="198.51.100.9")
    request.user = User(pk=3)
    request.auth = SimpleNamespace(id=11)
    assert identity_key(request) == "apikey:11"
    request.auth = None
    assert identity_key(request) == "user:3"
    from django.contrib.auth.models import AnonymousUser

    request.user = AnonymousUser()
    assert identity_key(request) == "ip:198.51.100.9"


@pytest.fixture
def unreachable_cache(settings):
    settings.CACHES = {
        **settings.CACHES,
        "unreachable": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        },
    }
    settings.RATELIMIT_USE_CACHE = "unreachable"


@pytest.mark.usefixtures("unreachable_cache")
def test_cache_unreachable_serves_fail_open_groups_and_counts_the_fallback(client):
    before = counters.value("ratelimit_fallback_total", group="test.tiny", mode="open")
    statuses = [client.get("/api/v1/test/tiny").status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    assert counters.value("ratelimit_fallback_total", group="test.tiny", mode="open") == before + 3


@pytest.mark.usefixtures("unreachable_cache")
def test_cache_unreachable_refuses_fail_closed_groups_with_a_503_envelope(client):
    before = counters.value("ratelimit_fallback_total", group="auth.test", mode="closed")
    response = client.get("/api/v1/test/login", HTTP_X_REQUEST_ID="trace-503")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "dependency_unavailable"
    assert response.json()["error"]["request_id"] == "trace-503"
    assert int(response["Retry-After"]) >= 1
    assert counters.value("ratelimit_fallback_total", group="auth.test", mode="closed") == before + 1


@pytest.mark.usefixtures("unreachable_cache")
def test_fail_modes_are_configurable(client, settings):
    settings.RATE_LIMIT_FAIL_CLOSED = ["test.*"]
    assert client.get("/api/v1/test/tiny").status_code == 503
    assert client.get("/api/v1/test/login").status_code == 200


@pytest.mark.usefixtures("unreachable_cache")
def test_cache_outage_is_logged(client, caplog):
    with caplog.at_level("WARNING", logger="agentplatform.ratelimit"):
        client.get("/api/v1/test/tiny")
    assert any("rate limit cache unreachable" in record.getMessage() for record in caplog.records)


def test_undeclared_groups_fail_the_system_checks(settings):
    settings.RATE_LIMITS = {key: value for key, value in RATES.items() if key != "test.tiny"}
    errors = [message for message in run_checks() if message.id == "agentplatform.E003"]
    assert errors
    assert all("'test.tiny'" in error.msg for error in errors)


@override_settings(TRUSTED_PROXY_COUNT=1, TRUSTED_PROXIES=("10.0.0.0/24",))
def test_behind_a_trusted_proxy_clients_are_told_apart_by_the_forwarded_address(client, clock):
    def get(forwarded):
        return client.get("/api/v1/test/tiny", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded).status_code

    assert [get("203.0.113.1") for _ in range(3)] == [200, 200, 429]
    assert get("203.0.113.2") == 200
    assert get("1.2.3.4, 203.0.113.1") == 429  # a prepended entry changes nothing


# --- leases (Redis only: each process reserves counts in batches) -------------------------------------

needs_redis = pytest.mark.skipif(
    "redis" not in settings.CACHES["default"]["BACKEND"].lower(), reason="leases apply to the Redis counter"
)


@pytest.fixture
def reservations(monkeypatch):
    """Records the size of every reservation the limiter makes in Redis (each still goes to Redis)."""
    sizes: list[int] = []
    real = ratelimit._reserve_redis

    def counting(cache, key, amount, ttl):
        sizes.append(amount)
        return real(cache, key, amount, ttl)

    monkeypatch.setattr(ratelimit, "_reserve_redis", counting)
    return sizes


def _allowed(group: str, key: str, calls: int) -> int:
    passed = 0
    for _ in range(calls):
        try:
            enforce(group, key)
        except RateLimited:
            continue
        passed += 1
    return passed


@needs_redis
def test_a_busy_caller_reserves_counts_in_growing_leases_and_exactly_the_limit_passes(settings, clock, reservations):
    settings.RATE_LIMITS = {**RATES, "test.thousand": "1000/m"}
    settings.RATE_LIMIT_LEASE_SHARE = 0.05  # leases of up to 50

    assert _allowed("test.thousand", "apikey:busy", 1200) == 1000
    assert reservations[:7] == [1, 2, 4, 8, 16, 32, 50]
    assert len(reservations) < 1000 / 10
    # Near the limit the leases shrink back to single counts, so none is left half-used, and once
    # the counter has passed the limit the refusals need no round trip.
    assert reservations[-1] == 1
    assert sum(reservations) == 1001
    assert _stored_count("test.thousand", "apikey:busy") == 1001


@needs_redis
def test_two_processes_leasing_one_key_never_hand_out_a_count_twice(settings, clock):
    from django.core.cache import cache

    settings.RATE_LIMIT_LEASE_SHARE = 0.05
    tables = [ratelimit.LeaseTable(), ratelimit.LeaseTable()]  # what two worker processes hold
    start = threading.Barrier(8)
    counts: list[int] = []
    lock = threading.Lock()

    def worker(table):
        start.wait()
        mine = [table.take(cache, "rl:shared", limit=1000, ttl=60, window=0) for _ in range(300)]
        with lock:
            counts.extend(mine)

    threads = [threading.Thread(target=worker, args=(tables[i % 2],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(counts) == 2400
    allowed = [count for count in counts if count <= 1000]
    assert len(allowed) == len(set(allowed))  # no count under the limit was handed out twice,
    assert 1000 - 2 * 50 <= len(allowed) <= 1000  # so at most the limit passed, at most a lease each early


@needs_redis
def test_small_limits_never_lease(clock, reservations):
    assert _allowed("test.twenty", "apikey:exact", 25) == 20
    assert reservations == [1] * 21


@needs_redis
def test_a_lease_share_of_zero_counts_every_request_in_redis(settings, clock, reservations):
    settings.RATE_LIMITS = {**RATES, "test.thousand": "1000/m"}
    settings.RATE_LIMIT_LEASE_SHARE = 0
    assert _allowed("test.thousand", "apikey:plain", 30) == 30
    assert reservations == [1] * 30


@needs_redis
def test_a_new_window_starts_with_a_single_count_lease(settings, clock, reservations):
    settings.RATE_LIMITS = {**RATES, "test.thousand": "1000/m"}
    settings.RATE_LIMIT_LEASE_SHARE = 0.05
    _allowed("test.thousand", "apikey:w", 10)
    reservations.clear()
    clock.shift(_seconds_to_window_end("apikey:w", group="test.thousand"))
    _allowed("test.thousand", "apikey:w", 3)
    assert reservations == [1, 2]


def test_the_throttle_follows_drf_s_protocol_refusing_with_the_seconds_to_wait(clock):
    from types import SimpleNamespace

    from rest_framework.throttling import ScopedRateThrottle

    from agentplatform.throttling import ScopedRateLimit

    assert issubclass(ScopedRateLimit, ScopedRateThrottle)
    request = RequestFactory().get("/", REMOTE_ADDR="198.51.100.20")
    view = SimpleNamespace(throttle_scope="test.tiny")
    answers = [ScopedRateLimit().allow_request(request, view) for _ in range(2)]
    refusing = ScopedRateLimit()
    assert answers == [True, True]
    assert refusing.allow_request(request, view) is False
    assert refusing.wait() == _seconds_to_window_end("ip:198.51.100.20")
    assert request.rate_limit_refusal.details == {
        "group": "test.tiny",
        "limit": 2,
        "retry_after": refusing.wait(),
    }
    assert ScopedRateLimit().allow_request(request, SimpleNamespace(throttle_scope=None)) is True
