"""Monitoring: the timing middleware's cost, batch ingestion throughput, a 7-day summary.

1. Middleware: the same no-op view at two paths, ``/api/v1/bench/noop`` (timed) and
   ``/api/v1/bench/noop-untimed`` (whose view declares ``request_timing = False``, so the middleware records nothing),
   measured alternately five times each; the ratio of the medians is the cost of timing. Because
   load noise on a shared machine is larger than the effect, the middleware's own cost is also
   timed in-process (a stub view, 200,000 calls) and converted to the ratio it implies.
2. Ingestion: ``POST /api/v1/monitoring/operations`` with 5,000 rows per request, each with a
   unique ``event_id`` (wrk's Lua rewrites a prefix per request), so every row takes the dedupe
   and count path; operations/s = requests/s x 5,000; and ``POST /api/v1/monitoring/agent-runs``
   with 1,000 runs per request, each with a unique ``run_id``. Each ÷ a COPY of the same rows into
   a table of the same columns with only a unique index on the key (``bench/ingest_baseline.py``).
3. Summary: seven days of minute histograms (and their hours and days, as the rollup writes them) for
   several operations, seeded in-process; ``operation_summary`` over the full 7 days, timed
   in-process (median of 20), and the same summary forced to read minutes only, for comparison.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from datetime import UTC, datetime, timedelta

from bench.ingest_baseline import baseline_note, copy_rows_per_second

ROWS_PER_REQUEST = 5000

# Replaces @P@ in the body with a per-request prefix, so every event_id is new.
# Each wrk thread gets its own prefix from setup() (math.random is unseeded: every thread drew the
# same "random" prefix, so the second thread's rows were all duplicates and cost little).
_UNIQUE_IDS_LUA = """
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("thread_id", os.time() .. "t" .. threads)
end
local counter = 0
request = function()
  counter = counter + 1
  local body = string.gsub(wrk.body, "@P@", thread_id .. "-" .. counter)
  return wrk.format(nil, nil, nil, body)
end
"""


def _middleware_ratio(bench) -> None:
    timed, untimed = [], []
    for _ in range(5):
        untimed.append(bench.load("/api/v1/bench/noop-untimed").requests_per_s)
        timed.append(bench.load("/api/v1/bench/noop").requests_per_s)
    timed_rps, untimed_rps = statistics.median(timed), statistics.median(untimed)
    bench.record(
        "noop req/s with timing middleware / without",
        timed_rps,
        "req/s",
        baseline=untimed_rps,
        baseline_name="same no-op, untimed path",
        target=">= 0.95",
        note=f"median of 5 alternating runs each; timed {sorted(round(x) for x in timed)}, "
        f"untimed {sorted(round(x) for x in untimed)}",
    )


def _middleware_cost_in_process(bench) -> None:
    """The middleware's own cost per request, timed in-process (free of the machine's load noise)."""
    bench.setup_django()
    from django.test import RequestFactory

    from monitoring.middleware import RequestTimingMiddleware
    from monitoring.recorder import recorder

    class _Match:
        view_name, route, func = "bench-noop", "api/v1/bench/noop", None

    class _Response:
        status_code = 200

    request = RequestFactory().get("/api/v1/bench/noop")
    request.resolver_match = _Match()
    response = _Response()
    middleware = RequestTimingMiddleware(lambda request: response)
    rounds = 200_000
    samples = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(rounds):
            middleware(request)
        samples.append((time.perf_counter() - started) / rounds * 1e6)
        recorder.flush()
    cost_us = statistics.median(samples)
    # A worker spends 1 / (noop req/s per worker) seconds per request; the middleware adds cost_us.
    per_request_us = 1e6 / (bench.baseline.requests_per_s / 2)
    bench.record(
        "timing middleware cost per request (in-process)",
        cost_us,
        "us",
        note=f"median of 5 x {rounds:,} calls with a stub view; implied noop ratio "
        f"{per_request_us / (per_request_us + cost_us):.3f} at the baseline's {per_request_us:.0f} us per request "
        "per worker",
    )


OPERATION_COLUMNS = (
    ("operation", "varchar(200)"),
    ("duration_ms", "double precision"),
    ("success", "boolean"),
    ("occurred_at", "timestamptz"),
    ("event_id", "varchar(100)"),
)
RUN_COLUMNS = (
    ("run_id", "varchar(100)"),
    ("agent", "varchar(100)"),
    ("workflow", "varchar(100)"),
    ("steps", "integer"),
    ("retry_count", "integer"),
    ("no_progress_count", "integer"),
    ("critic_score", "double precision"),
    ("tokens", "bigint"),
    ("outcome", "varchar(16)"),
    ("started_at", "timestamptz"),
    ("finished_at", "timestamptz"),
    ("received_at", "timestamptz"),
    ("submitted_by_id", "bigint"),
)
RUNS_PER_REQUEST = 1000


def _ingestion(bench) -> None:
    now = datetime.now(UTC)
    rows = [
        {
            "operation": f"agent.op{i % 20}",
            "duration_ms": round(math.exp(2 + (i % 97) / 25), 3),
            "success": i % 50 != 0,
            "occurred_at": now.isoformat(),
            "event_id": f"@P@-{i}",
        }
        for i in range(ROWS_PER_REQUEST)
    ]
    body = json.dumps({"operations": rows}, separators=(",", ":"))
    result = bench.load(
        "/api/v1/monitoring/operations",
        method="POST",
        headers=bench.agent_headers(),
        body=body,
        lua=_UNIQUE_IDS_LUA,
        connections=4,
    )
    total = max(50_000, int(500_000 * bench.scale))
    table_rows = [
        (row["operation"], row["duration_ms"], row["success"], now, f"copy-{n}")
        for n, row in ((n, rows[n % ROWS_PER_REQUEST]) for n in range(total))
    ]
    baseline = copy_rows_per_second(
        bench, table="bench_copy_operations", columns=OPERATION_COLUMNS, rows=table_rows, batch=ROWS_PER_REQUEST
    )
    bench.record(
        "operations/s through POST /monitoring/operations",
        result.requests_per_s * ROWS_PER_REQUEST,
        "ops/s",
        baseline=baseline,
        baseline_name="COPY of the same rows, same columns, unique event_id only",
        target=">= 50000; ≥ 0.5",
        note=f"{ROWS_PER_REQUEST} rows/request, unique event_ids; {result.requests_per_s:.1f} req/s, "
        f"p50 {result.p50_ms:.0f} ms, p99 {result.p99_ms:.0f} ms, non-2xx {result.non_2xx}; "
        "the counts go to each process's writer, which adds them to the minute/hour/day rows; "
        + baseline_note("bench_copy_operations", OPERATION_COLUMNS, ROWS_PER_REQUEST),
    )


def _agent_runs_ingestion(bench) -> None:
    now = datetime.now(UTC)
    started = (now - timedelta(seconds=30)).isoformat()
    rows = [
        {
            "run_id": f"@P@-{i}",
            "workflow": f"flow-{i % 5}",
            "steps": 3 + i % 7,
            "retry_count": i % 3,
            "no_progress_count": i % 2,
            "critic_score": 0.5 + (i % 50) / 100,
            "tokens": 900 + i,
            "outcome": "success" if i % 10 else "failure",
            "started_at": started,
            "finished_at": now.isoformat(),
        }
        for i in range(RUNS_PER_REQUEST)
    ]
    body = json.dumps({"runs": rows}, separators=(",", ":"))
    result = bench.load(
        "/api/v1/monitoring/agent-runs",
        method="POST",
        headers=bench.agent_headers(),
        body=body,
        lua=_UNIQUE_IDS_LUA,
        connections=4,
    )
    total = max(50_000, int(500_000 * bench.scale))
    table_rows = [
        (
            f"copy-{n}",
            "bench-agent",
            row["workflow"],
            row["steps"],
            row["retry_count"],
            row["no_progress_count"],
            row["critic_score"],
            row["tokens"],
            row["outcome"],
            now - timedelta(seconds=30),
            now,
            now,
            1,
        )
        for n, row in ((n, rows[n % RUNS_PER_REQUEST]) for n in range(total))
    ]
    baseline = copy_rows_per_second(
        bench, table="bench_copy_runs", columns=RUN_COLUMNS, rows=table_rows, batch=RUNS_PER_REQUEST, key="run_id"
    )
    bench.record(
        "agent runs/s through POST /monitoring/agent-runs",
        result.requests_per_s * RUNS_PER_REQUEST,
        "runs/s",
        baseline=baseline,
        baseline_name="COPY of the same rows, same columns, unique run_id only",
        target="≥ 0.5",
        note=f"{RUNS_PER_REQUEST:,} runs/request, unique run_ids; {result.requests_per_s:.1f} req/s, "
        f"p50 {result.p50_ms:.0f} ms, p99 {result.p99_ms:.0f} ms, non-2xx {result.non_2xx}; "
        + baseline_note("bench_copy_runs", RUN_COLUMNS, RUNS_PER_REQUEST, key="run_id"),
    )


def _seed_week(*, operations: int, now: datetime) -> None:
    import numpy as np

    from monitoring.models import OperationDay, OperationHour, OperationMinute
    from monitoring.sketch import GAMMA

    for model in (OperationMinute, OperationHour, OperationDay):
        model.objects.filter(operation__startswith="bench.").delete()
    rng = np.random.default_rng(1)
    start = (now - timedelta(days=7)).replace(second=0, microsecond=0)
    minutes = 7 * 24 * 60
    for op in range(operations):
        name = f"bench.op{op}"
        minute_rows, hours, days = [], {}, {}
        for m in range(minutes):
            values = rng.lognormal(mean=3 + op % 3, sigma=1.0, size=60)
            indices, counts = np.unique(np.ceil(np.log(values) / math.log(GAMMA)).astype(int), return_counts=True)
            buckets = {str(i): int(c) for i, c in zip(indices, counts, strict=True)}
            minute = start + timedelta(minutes=m)
            minute_rows.append(
                OperationMinute(
                    operation=name,
                    minute=minute,
                    count=60,
                    errors=1,
                    duration_sum_ms=float(values.sum()),
                    buckets=buckets,
                )
            )
            for periods, period_start in ((hours, minute.replace(minute=0)), (days, minute.replace(hour=0, minute=0))):
                period = periods.setdefault(period_start, {"count": 0, "errors": 0, "sum": 0.0, "buckets": {}})
                period["count"] += 60
                period["errors"] += 1
                period["sum"] += float(values.sum())
                for key, count in buckets.items():
                    period["buckets"][key] = period["buckets"].get(key, 0) + count
        OperationMinute.objects.bulk_create(minute_rows, batch_size=2000)
        OperationHour.objects.bulk_create(
            [
                OperationHour(
                    operation=name,
                    hour=hour,
                    count=data["count"],
                    errors=data["errors"],
                    duration_sum_ms=data["sum"],
                    buckets=data["buckets"],
                )
                for hour, data in hours.items()
            ],
            batch_size=2000,
        )
        OperationDay.objects.bulk_create(
            [
                OperationDay(
                    operation=name,
                    day=day,
                    count=data["count"],
                    errors=data["errors"],
                    duration_sum_ms=data["sum"],
                    buckets=data["buckets"],
                )
                for day, data in days.items()
            ]
        )


def _timed_ms(fn, repeats: int = 20) -> float:
    fn()  # warm caches and connections
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def _summary(bench) -> None:
    bench.setup_django()
    from django.db import connection

    from monitoring import selectors

    operations = max(1, round(5 * bench.scale))
    now = datetime.now(UTC)
    _seed_week(operations=operations, now=now)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE monitoring_operationminute, monitoring_operationhour, monitoring_operationday")
    since = now - timedelta(days=7)
    one = _timed_ms(lambda: selectors.operation_summary(operation="bench.op0", since=since, until=now, now=now))
    bench.record(
        "summary of one operation over 7 days of minute histograms",
        one,
        "ms",
        target="<= 50 ms",
        note="10,080 minutes: whole days, then edge hours, then edge minutes; median of 20, in-process",
    )
    every = _timed_ms(lambda: selectors.operations_summary(since=since, until=now, now=now))
    bench.record(
        f"summary of all {operations} operations over 7 days",
        every,
        "ms",
        note="same plan, every operation grouped in one SQL pass",
    )
    original = selectors.window_plan
    selectors.window_plan = lambda *, since, until, now: selectors.Window(since, until, (), (), ((since, until),))
    try:
        minutes_only = _timed_ms(
            lambda: selectors.operation_summary(operation="bench.op0", since=since, until=now, now=now), repeats=5
        )
    finally:
        selectors.window_plan = original
    bench.record(
        "same summary read from minute rows only (no day or hour rows)",
        minutes_only,
        "ms",
        note="why the rollup writes hours and days alongside minutes",
    )


def run(bench) -> None:
    _middleware_ratio(bench)
    _middleware_cost_in_process(bench)
    _ingestion(bench)
    _agent_runs_ingestion(bench)
    _summary(bench)
