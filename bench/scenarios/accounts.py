"""Accounts: what authentication costs on top of the no-op view.

- API key: ``/api/v1/bench/noop-auth`` with ``Authorization: Api-Key`` ÷ the anonymous no-op. The
  verified key is served from the shared cache (one Redis GET + a SHA-256), so the ratio shows
  key verification is cheap; target ≥ 0.8.
- JWT: the same no-op with a Bearer token (signature check, a denylist answer from the cache, and
  one user query) ÷ the anonymous no-op.
- In-process: microseconds per warm API-key verification, without HTTP around it.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.request

TARGET_KEY_RATIO = "≥ 0.8 of the anonymous no-op"


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
    jwt_result = bench.load("/api/v1/bench/noop-auth", headers=_bearer(bench))
    bench.record(
        "JWT no-op ÷ anonymous no-op",
        jwt_result.requests_per_s,
        "req/s",
        baseline=anonymous.requests_per_s,
        baseline_name="anonymous no-op",
        note=f"p50 {jwt_result.p50_ms:.2f} ms, p99 {jwt_result.p99_ms:.2f} ms, non-2xx {jwt_result.non_2xx}",
    )
    rounds = max(200, int(5_000 * bench.scale))
    bench.record(
        "API-key verification, warm cache (in-process)",
        _in_process_verification_us(bench, headers["Authorization"], rounds),
        "µs",
        note=f"{rounds} rounds: one Redis GET + SHA-256 + constant-time compare",
    )
