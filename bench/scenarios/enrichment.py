"""Enrichment benchmarks: the context endpoint's own overhead, and a cache hit vs a live fetch.

Figures and their baselines (same run):
- POST /enrichment/context with nothing to fetch (one refused target: validation, planning,
  guard, event loop, audit) requests/s and p99 ÷ the authenticated no-op's;
- context_enrich() in process, a search served from the shared cache vs the same search fetched
  from a SearxNG-style server on loopback (the fetch is the baseline: the ratio is the share of a
  real call a cache hit costs).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _endpoint_overhead(bench) -> None:
    headers = bench.agent_headers()
    body = json.dumps({"web": {"urls": ["http://169.254.169.254/latest/meta-data/"]}})
    result = bench.load("/api/v1/enrichment/context", method="POST", headers=headers, body=body)
    baseline = bench.baseline_auth
    bench.record(
        "context (refused target) requests/s",
        result.requests_per_s,
        "req/s",
        baseline=baseline.requests_per_s if baseline else None,
        baseline_name="noop (agent API key)",
        note=f"{result.non_2xx} non-2xx, {result.errors} errors; p99 {result.p99_ms:.2f} ms",
    )


class _Search(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    body = json.dumps(
        {"results": [{"title": f"Result {i}", "url": f"https://r.example/{i}", "content": "x" * 200} for i in range(5)]}
    ).encode()

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)


def _cache_hit_vs_fetch(bench) -> None:
    bench.setup_django()
    from django.conf import settings

    from audit.writer import audit_buffer
    from enrichment.services import context_enrich

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Search)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    settings.SEARCH_BASE_URL = f"http://127.0.0.1:{server.server_address[1]}"
    calls = max(50, int(500 * bench.scale))
    spec = {"web": {"queries": [f"bench cached query {time.time_ns()}"]}}
    try:
        # One audit scope, as a request has: events are bulk-inserted once at the end instead of
        # one commit per call, which would otherwise dominate what is measured.
        with audit_buffer():
            started = time.perf_counter()
            for i in range(calls):  # distinct queries: every call fetches
                context_enrich(actor=None, spec={"web": {"queries": [f"bench fetch {time.time_ns()} {i}"]}})
            fetch_ms = (time.perf_counter() - started) / calls * 1000
            context_enrich(actor=None, spec=spec)
            started = time.perf_counter()
            for _ in range(calls):
                context_enrich(actor=None, spec=spec)
            hit_ms = (time.perf_counter() - started) / calls * 1000
    finally:
        server.shutdown()
        server.server_close()
    bench.record(
        "context_enrich() search, cache hit",
        hit_ms,
        "ms/call",
        baseline=fetch_ms,
        baseline_name="same call fetched from a loopback SearxNG",
        note=f"{calls} calls each, in one audit scope; includes planning, cache and health bookkeeping",
    )


def run(bench) -> None:
    _endpoint_overhead(bench)
    _cache_hit_vs_fetch(bench)
