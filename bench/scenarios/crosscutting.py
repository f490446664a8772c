"""Cross-cutting: what rate limiting and circuit breakers cost per request.

1. Throttle: the no-op view with and without a throttle scope (``/api/v1/bench/noop-limited``
   counts every request against one hot key, so it runs on leases after its first few requests),
   measured in back-to-back pairs; the median pair ratio is what the throttle leaves of the
   no-op's throughput.
2. In-process, against the bench Redis: the time of one ``enforce()`` (with leases, and with
   ``RATE_LIMIT_LEASE_SHARE = 0`` so every call is a round trip) and of one
   ``get_breaker(...).call(noop)`` (its shared-state read), median of 5 rounds of
   ``2000 x scale`` calls, next to a direct call.
"""

from __future__ import annotations

import statistics
import time

# Pairs of back-to-back loads (plain no-op, limited no-op), order alternating from pair to pair, and
# the figure is the median of the pairs' own ratios, as in the audit scenario: on a host shared with
# other loads a baseline measured minutes earlier says little.
THROTTLE_PAIRS = 8


def _throttle_ratio(bench) -> None:
    pairs = []
    for index in range(THROTTLE_PAIRS):
        if index % 2 == 0:
            plain = bench.load("/api/v1/bench/noop").requests_per_s
            limited = bench.load("/api/v1/bench/noop-limited").requests_per_s
        else:
            limited = bench.load("/api/v1/bench/noop-limited").requests_per_s
            plain = bench.load("/api/v1/bench/noop").requests_per_s
        pairs.append((plain, limited))
    pair_ratios = [limited / plain for plain, limited in pairs]
    quartiles = statistics.quantiles(pair_ratios, n=4)
    bench.record(
        "noop req/s with rate limit / without",
        statistics.median(limited for _, limited in pairs),
        "req/s",
        baseline=statistics.median(plain for plain, _ in pairs),
        baseline_name="same no-op, no throttle_scope; value and baseline are medians, ratio the median pair ratio",
        ratio=statistics.median(pair_ratios),
        target=">= 0.9",
        note=f"{THROTTLE_PAIRS} back-to-back pairs, order alternating; pair ratios "
        f"{', '.join(f'{ratio:.2f}' for ratio in pair_ratios)} (quartiles {quartiles[0]:.3f}-{quartiles[2]:.3f}); "
        "one IP, so one hot Redis key",
    )


def _per_call_us(function, calls: int) -> float:
    rounds = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(calls):
            function()
        rounds.append((time.perf_counter() - started) / calls * 1_000_000)
    return statistics.median(rounds)


def _in_process(bench) -> None:
    bench.setup_django()
    from django.core.cache import cache

    from agentplatform import compat
    from agentplatform.breakers import get_breaker
    from agentplatform.ratelimit import enforce

    calls = max(200, int(2000 * bench.scale))
    cache.set("bench:warm", 1)
    redis_client = compat.redis_client(cache)
    ping = _per_call_us(redis_client.ping, calls)
    bench.record("Redis PING round trip", ping, "us", note=f"in-process, median of 5 x {calls}")

    def noop() -> None:
        return None

    direct = _per_call_us(noop, calls)
    breaker = get_breaker("bench-noop")
    breaker.reset()
    through_breaker = _per_call_us(lambda: breaker.call(noop), calls)
    bench.record(
        "circuit breaker overhead per call",
        through_breaker - direct,
        "us",
        baseline=ping,
        baseline_name="Redis PING round trip",
        target="1 round trip (HMGET of the state)",
        note=f"get_breaker().call(noop) with state in Redis ({breaker.storage_mode}), minus a direct call; "
        f"median of 5 x {calls}",
    )
    from django.conf import settings

    counter = iter(range(10**9))
    share = settings.RATE_LIMIT_LEASE_SHARE
    try:
        settings.RATE_LIMIT_LEASE_SHARE = 0
        per_round_trip = _per_call_us(lambda: enforce("bench.noop", f"bench:{next(counter) % 100}"), calls)
    finally:
        settings.RATE_LIMIT_LEASE_SHARE = share
    bench.record(
        "rate limit enforce() per call, no leases",
        per_round_trip,
        "us",
        baseline=ping,
        baseline_name="Redis PING round trip",
        target="1 round trip",
        note=f"RATE_LIMIT_LEASE_SHARE=0: one EVALSHA (SET NX EX + INCRBY) per call; 100 keys; median of 5 x {calls}",
    )
    # Ten agents' keys, each called again and again: what a fleet's hot path looks like.
    per_enforce = _per_call_us(lambda: enforce("bench.noop", f"busy:{next(counter) % 10}"), calls)
    bench.record(
        "rate limit enforce() per call, leases",
        per_enforce,
        "us",
        baseline=per_round_trip,
        baseline_name="same calls without leases",
        note=f"RATE_LIMIT_LEASE_SHARE={share}: 10 busy keys; median of 5 x {calls}",
    )


def _memo_read(bench) -> None:
    import threading

    import cachetools

    from accounts.cache import LocalMemo

    calls = max(2000, int(20_000 * bench.scale))
    memo = LocalMemo(lambda: 3600.0)
    memo.set("prefix", {"key_id": 1})
    local = _per_call_us(lambda: memo.get("prefix"), calls)
    ttl_cache, lock = cachetools.TTLCache(maxsize=10_000, ttl=3600.0), threading.Lock()
    ttl_cache["prefix"] = {"key_id": 1}

    def locked_read():
        with lock:
            return ttl_cache.get("prefix")

    library = _per_call_us(locked_read, calls)
    bench.record(
        "API-key memo read, cachetools.TTLCache / LocalMemo",
        library,
        "us",
        baseline=local,
        baseline_name="LocalMemo.get (a dict read, no lock)",
        note=f"TTLCache.get under a threading.Lock (cachetools is not thread-safe); median of 5 x {calls}",
    )


def run(bench) -> None:
    _throttle_ratio(bench)
    _in_process(bench)
    _memo_read(bench)
