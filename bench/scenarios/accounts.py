"""Accounts: what authentication costs on top of the no-op view.

- API key: ``/api/v1/bench/noop-auth`` with ``Authorization: Api-Key`` ÷ the anonymous no-op. The
  verified key is served from the process's memo (a SHA-256 and a drain of the invalidation
  channel), so the ratio shows key verification is cheap; target ≥ 0.8.
- JWT: the same no-op with a Bearer token ÷ the anonymous no-op, the median ratio of alternating
  pairs of loads: no round trip in steady state (each process remembers the denylist answer and the
  user's snapshot, and drains the invalidation channel per request), no query, the signature
  check memoised per token text; target ≥ 0.8.
- In-process: microseconds per warm API-key verification and per warm JWT authentication, without
  HTTP around them (both served from the process's memory after a drain of the channel).
"""

from __future__ import annotations

import json
import secrets
import statistics
import time
import urllib.request

TARGET_KEY_RATIO = "≥ 0.8 of the anonymous no-op"
TARGET_JWT_RATIO = "≥ 0.8 of the anonymous no-op"


def _in_process_jwt_us(bench, raw_header: str, rounds: int) -> float:
    bench.setup_django()
    from rest_framework.test import APIRequestFactory

    from accounts.authentication import JWTAuthentication

    request = APIRequestFactory().get("/api/v1/bench/noop-auth", HTTP_AUTHORIZATION=raw_header)
    authentication = JWTAuthentication()
    authentication.authenticate(request)  # warm the caches
    started = time.perf_counter()
    for _ in range(rounds):
        authentication.authenticate(request)
    return (time.perf_counter() - started) / rounds * 1e6


def _bearer(bench) -> dict[str, str]:
    username = f"bench-person-{int(time.time())}"
    password = secrets.token_urlsafe(24)
    bench.manage("create_user", username, "--role", "analyst", "--password-stdin", input=password + "\n")
    request = urllib.request.Request(
        bench.base_url + "/api/v1/auth/token",
        data=json.dumps({"username": username, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        access = json.load(response)["access"]
    return {"Authorization": f"Bearer {access}"}


def _in_process_verification_us(bench, raw_header: str, rounds: int) -> float:
    bench.setup_django()
    from rest_framework.test import APIRequestFactory

    from accounts.authentication import ApiKeyAuthentication

    request = APIRequestFactory().get("/api/v1/bench/noop-auth", HTTP_AUTHORIZATION=raw_header)
    authentication = ApiKeyAuthentication()
    authentication.authenticate(request)  # warm the cache
    started = time.perf_counter()
    for _ in range(rounds):
        authentication.authenticate(request)
    return (time.perf_counter() - started) / rounds * 1e6


# Pairs of back-to-back loads, order alternating, the figure the median of the pairs' own ratios
# (the audit scenario's design): on a shared host a baseline measured minutes earlier says little.
JWT_PAIRS = 8


def _jwt_pairs(bench, bearer: dict[str, str]) -> None:
    duration = max(3.0, bench.duration / 2)
    bench.load("/api/v1/bench/noop-auth", headers=bearer, duration=3)  # warm-up: caches, connections
    pairs = []
    for index in range(JWT_PAIRS):
        if index % 2 == 0:
            anonymous = bench.load("/api/v1/bench/noop", duration=duration)
            jwt_result = bench.load("/api/v1/bench/noop-auth", headers=bearer, duration=duration)
        else:
            jwt_result = bench.load("/api/v1/bench/noop-auth", headers=bearer, duration=duration)
            anonymous = bench.load("/api/v1/bench/noop", duration=duration)
        pairs.append((anonymous, jwt_result))
    ratios = [jwt_result.requests_per_s / anonymous.requests_per_s for anonymous, jwt_result in pairs]
    bench.record(
        "JWT no-op ÷ anonymous no-op",
        statistics.median(jwt_result.requests_per_s for _, jwt_result in pairs),
        "req/s",
        baseline=statistics.median(anonymous.requests_per_s for anonymous, _ in pairs),
        baseline_name="anonymous no-op; value and baseline are medians of the pairs, ratio the median pair ratio",
        ratio=statistics.median(ratios),
        target=TARGET_JWT_RATIO,
        note=f"{JWT_PAIRS} back-to-back pairs of {duration:g} s loads, order alternating; pair ratios "
        f"{', '.join(f'{ratio:.2f}' for ratio in ratios)}; "
        f"non-2xx {sum(jwt_result.non_2xx for _, jwt_result in pairs)}",
    )


def run(bench) -> None:
    anonymous = bench.baseline or bench.load("/api/v1/bench/noop")
    headers = bench.agent_headers()
    keyed = bench.load("/api/v1/bench/noop-auth", headers=headers)
    bench.record(
        "API-key no-op ÷ anonymous no-op",
        keyed.requests_per_s,
        "req/s",
        baseline=anonymous.requests_per_s,
        baseline_name="anonymous no-op",
        target=TARGET_KEY_RATIO,
        note=f"p50 {keyed.p50_ms:.2f} ms, p99 {keyed.p99_ms:.2f} ms, non-2xx {keyed.non_2xx}",
    )
    bearer = _bearer(bench)
    _jwt_pairs(bench, bearer)
    rounds = max(200, int(5_000 * bench.scale))
    bench.record(
        "API-key verification, warm cache (in-process)",
        _in_process_verification_us(bench, headers["Authorization"], rounds),
        "µs",
        note=f"{rounds} rounds: the process memo after a drain of the invalidation channel, SHA-256, compare",
    )
    bench.record(
        "JWT authentication, warm cache (in-process)",
        _in_process_jwt_us(bench, bearer["Authorization"], rounds),
        "µs",
        note=f"{rounds} rounds: the process memo (denylist answer, user snapshot) after a drain of the "
        "invalidation channel, memoised signature check",
    )
