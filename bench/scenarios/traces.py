"""Traces: the trace page with 1,000 spans, and filtered trace lists over 10 million spans x scale.

Seeds in SQL with ``generate_series`` straight into the daily partitions (no Python row loop):
spans of 10-span traces (an ``invoke_agent`` root, five ``chat`` calls of one of five models with
their tokens and cost, four tools) over 30 days, 20 agents, 100,000 users, one trace in 20 with
an error; then the traces, summed from their spans day by day, as ingest keeps them. Each day is
one transaction. The seed is kept when the tables already hold the expected number of spans, so a
rerun against the same database (``python -m bench.scenarios.traces``) measures without rebuilding.

Then, in-process (Django's test client through the whole middleware stack, or the selector):

1. the admin's trace page (the waterfall) of one trace of 1,000 spans nested four deep: median
   server time, target <= 200 ms; the API's ``GET /traces/{id}`` of the same trace; baseline: the
   admin's app index page (same stack, session and permission checks, no trace data);
2. one page of 50 traces for each of several filters (agent + status, user, model, agent + one
   day, experiment + variant, a trace id) through ``trace_page``: median and p99 per filter, target
   <= 50 ms; baseline: the unfiltered first page read in plain SQL;
3. the admin's trace list with the same filters (its capped count included).
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, date, datetime, timedelta

SPANS = 10_000_000
SPANS_PER_TRACE = 10
DAYS = 30
AGENTS = 20
USERS = 100_000
MODELS = ("gpt-4.1-mini", "gpt-4o", "claude-sonnet-4-5", "gemini-2.5-flash", "o4-mini")
FIRST_DAY = date(2026, 10, 1)
BIG_TRACE_SPANS = 1000
BIG_TRACE_ID = "b" * 32


def run(bench) -> None:
    bench.setup_django()
    total = max(100_000, int(SPANS * bench.scale))
    agents = _agents()
    _seed(bench, total, agents)
    big = _big_trace(agents[0])
    _trace_page(bench, big)
    _filtered_lists(bench, total, agents)


def _agents() -> list:
    from accounts.models import User

    agents = []
    for index in range(AGENTS):
        agent = User.objects.filter(username=f"bench-trace-agent-{index}").first()
        if agent is None:
            agent = User.objects.create_user(username=f"bench-trace-agent-{index}", role="agent", password=None)
        agents.append(agent)
    return agents


def _seed(bench, total: int, agents: list) -> None:
    from django.db import connection

    from traces import partitions
    from traces.models import Span

    days = [FIRST_DAY + timedelta(days=n) for n in range(DAYS + 1)]
    partitions.ensure_days(days)
    held = Span.objects.exclude(trace_id=BIG_TRACE_ID).count()
    if held == total:
        bench.record("traces seed", 0, "s", note=f"{total:,} spans kept from an earlier run")
        return
    if held:
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE traces_span, traces_trace")
    traces = total // SPANS_PER_TRACE
    per_day = traces // DAYS
    seconds_per_trace = 86400 / per_day
    agent_ids = "ARRAY[" + ",".join(str(agent.pk) for agent in agents) + "]"
    models = "ARRAY[" + ",".join(f"'{model}'" for model in MODELS) + "]"
    started = time.perf_counter()
    for day_index, day in enumerate(days[:-1]):
        first = day_index * per_day
        count = per_day if day_index < DAYS - 1 else traces - first
        day_start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
        # t: the trace's number; k: the span's place in it (0 the root, odd a chat, even a tool).
        spans_sql = f"""
            INSERT INTO traces_span (trace_id, span_id, parent_span_id, agent_id, name, kind, start_time,
                end_time, duration_ms, status, status_message, operation, provider, request_model,
                response_model, tool_name, tool_call_id, agent_name, conversation_id, error_type, user_id,
                prompt_type, attributes, received_at, input_tokens, output_tokens, cost)
            SELECT lpad(to_hex(t), 32, '0'), lpad(to_hex(t * 16 + k), 16, '0'),
                CASE WHEN k = 0 THEN '' ELSE lpad(to_hex(t * 16), 16, '0') END,
                ({agent_ids})[1 + t %% {AGENTS}],
                CASE WHEN k = 0 THEN 'invoke_agent support' WHEN k %% 2 = 1 THEN 'chat ' || m
                     ELSE 'execute_tool search' END,
                CASE WHEN k = 0 THEN 'internal' ELSE 'client' END,
                ts + k * interval '200 milliseconds', ts + k * interval '200 milliseconds'
                    + CASE WHEN k = 0 THEN interval '2100 milliseconds' ELSE interval '180 milliseconds' END,
                CASE WHEN k = 0 THEN 2100 ELSE 180 END,
                CASE WHEN k = 4 AND t %% 20 = 0 THEN 'error' ELSE 'ok' END, '',
                CASE WHEN k = 0 THEN 'invoke_agent' WHEN k %% 2 = 1 THEN 'chat' ELSE 'execute_tool' END,
                CASE WHEN k %% 2 = 1 THEN 'openai' ELSE '' END,
                CASE WHEN k %% 2 = 1 THEN m ELSE '' END, CASE WHEN k %% 2 = 1 THEN m ELSE '' END,
                CASE WHEN k %% 2 = 0 AND k > 0 THEN 'search' ELSE '' END, '', '', '',
                CASE WHEN k = 4 AND t %% 20 = 0 THEN 'TimeoutError' ELSE '' END,
                'u' || (t %% {USERS}), '', '{{}}'::jsonb, ts,
                CASE WHEN k %% 2 = 1 THEN 800 + (t * 7 + k) %% 1200 END,
                CASE WHEN k %% 2 = 1 THEN 60 + (t * 3 + k) %% 240 END,
                CASE WHEN k %% 2 = 1
                     THEN ((800 + (t * 7 + k) %% 1200) * 2 + (60 + (t * 3 + k) %% 240) * 8) / 1000000.0 END
            FROM (SELECT t, ({models})[1 + t %% {len(MODELS)}] AS m,
                         %s::timestamptz + (t - %s) * %s * interval '1 second' AS ts
                  FROM generate_series(%s, %s) AS t) AS traces,
                 generate_series(0, {SPANS_PER_TRACE - 1}) AS k
        """  # noqa: S608 (constants of this file)
        # A trace's spans may run past midnight: each trace is summed with the day it started on.
        low = day_start
        high = day_start + timedelta(days=1)
        traces_sql = """
            INSERT INTO traces_trace (trace_id, day, agent_id, user_id, root_span_name, start_time, end_time,
                duration_ms, status, span_count, error_count, llm_calls, unpriced_spans, models_used,
                input_tokens, output_tokens, cost, updated_at)
            SELECT trace_id, %s, agent_id, min(user_id), 'invoke_agent support', min(start_time), max(end_time),
                extract(epoch FROM max(end_time) - min(start_time)) * 1000,
                CASE WHEN bool_or(status = 'error') THEN 'error' ELSE 'ok' END, count(*),
                count(*) FILTER (WHERE status = 'error'), count(*) FILTER (WHERE operation = 'chat'), 0,
                jsonb_build_array(max(response_model)), sum(input_tokens), sum(output_tokens), sum(cost), now()
            FROM traces_span WHERE start_time >= %s AND start_time < %s + interval '1 minute'
            GROUP BY agent_id, trace_id HAVING min(start_time) >= %s
        """
        with connection.cursor() as cursor:
            cursor.execute(spans_sql, [day_start, first, seconds_per_trace, first, first + count - 1])
            cursor.execute(traces_sql, [day, low, high, low])
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE traces_span")
        cursor.execute("VACUUM ANALYZE traces_trace")
    elapsed = time.perf_counter() - started
    bench.record(
        "traces seed spans/s (INSERT ... SELECT into daily partitions, all indexes)",
        total / elapsed,
        "rows/s",
        note=f"{total:,} spans, {traces:,} traces summed from them, {DAYS} days, {AGENTS} agents; {elapsed:.0f} s",
    )


def _big_trace(agent):
    """One trace of 1,000 spans: a root, 9 agents steps, each with chats and tools nested under them."""
    from django.utils import timezone

    from traces import partitions
    from traces.models import Span, Trace

    existing = Trace.objects.filter(trace_id=BIG_TRACE_ID).first()
    if existing:
        return existing
    start = datetime.combine(FIRST_DAY + timedelta(days=DAYS - 1), datetime.min.time(), tzinfo=UTC) + timedelta(
        hours=23
    )
    partitions.ensure_days({start.date()})
    now = timezone.now()
    rows = []
    for index in range(BIG_TRACE_SPANS):
        # Depths: 0 the root; 1..9 steps; then each span hangs under a step or under a span of that step.
        if index == 0:
            parent = ""
        elif index < 10:
            parent = f"{0:016x}"
        elif index % 3 == 0:
            parent = f"{index // 10:016x}"
        else:
            parent = f"{index - 1:016x}"
        begin = start + timedelta(milliseconds=index * 5)
        chat = index % 2 == 1
        rows.append(
            Span(
                trace_id=BIG_TRACE_ID,
                span_id=f"{index:016x}",
                parent_span_id=parent,
                agent=agent,
                name=f"chat gpt-4o #{index}" if chat else f"step {index}",
                start_time=begin,
                end_time=begin + timedelta(milliseconds=40),
                duration_ms=40.0 if index else 6000.0,
                operation="chat" if chat else "execute_tool",
                provider="openai" if chat else "",
                request_model="gpt-4o" if chat else "",
                response_model="gpt-4o" if chat else "",
                input_tokens=1000 if chat else None,
                output_tokens=100 if chat else None,
                content={"input": [{"role": "user", "content": "bench message " * 10}]} if chat else None,
                attributes={"bench": True},
                received_at=now,
            )
        )
    Span.objects.bulk_create(rows, batch_size=500)
    return Trace.objects.create(
        trace_id=BIG_TRACE_ID,
        day=start.date(),
        agent=agent,
        root_span_name=rows[0].name,
        start_time=start,
        end_time=start + timedelta(seconds=6),
        duration_ms=6000.0,
        span_count=BIG_TRACE_SPANS,
        llm_calls=500,
        unpriced_spans=500,
        models_used=["gpt-4o"],
        input_tokens=500_000,
        output_tokens=50_000,
        updated_at=now,
    )


def _timed(fn, repeat: int) -> list[float]:
    fn()  # warm-up
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return sorted(samples)


def _p99(samples: list[float]) -> float:
    return samples[max(0, int(len(samples) * 0.99) - 1)]


def _admin_client():
    from django.test import Client

    from accounts.models import User

    admin = User.objects.filter(username="bench-trace-admin").first() or User.objects.create_superuser(
        "bench-trace-admin", "bench@example.com", "x-bench-password-1", role="admin"
    )
    client = Client()
    client.force_login(admin)
    return client, admin


def _trace_page(bench, big) -> None:
    client, _admin = _admin_client()

    def get(path):
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)

    baseline = _timed(lambda: get("/admin/traces/"), 20)
    page = _timed(lambda: get(f"/admin/traces/trace/{big.pk}/change/"), 20)
    bench.record(
        f"trace page (admin waterfall) of {BIG_TRACE_SPANS:,} spans, server time",
        statistics.median(page),
        "ms",
        baseline=statistics.median(baseline),
        baseline_name="admin app index, same client",
        target="<= 200 ms",
        note=f"in-process through the full stack, median of 20, p99 {_p99(page):.1f} ms; 500 spans with messages",
    )
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(_admin)
    samples = _timed(lambda: api.get(f"/api/v1/traces/{BIG_TRACE_ID}"), 20)
    bench.record(
        f"GET /api/v1/traces/{{id}} of {BIG_TRACE_SPANS:,} spans, server time",
        statistics.median(samples),
        "ms",
        baseline=statistics.median(baseline),
        baseline_name="admin app index, same client",
        target="<= 200 ms",
        note=f"in-process, median of 20, p99 {_p99(samples):.1f} ms",
    )


def _filtered_lists(bench, total: int, agents: list) -> None:
    from django.db import connection

    from traces.selectors import TraceFilters, trace_page

    client, admin = _admin_client()
    day = FIRST_DAY + timedelta(days=12)
    day_start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    with connection.cursor() as cursor:
        cursor.execute("SELECT trace_id FROM traces_trace WHERE day = %s LIMIT 1", [day])
        some_trace = cursor.fetchone()[0]

    def plain_sql():
        with connection.cursor() as cursor:
            cursor.execute("SELECT * FROM traces_trace ORDER BY start_time DESC, id DESC LIMIT 50")
            cursor.fetchall()

    baseline = statistics.median(_timed(plain_sql, 30))
    cases = [
        (
            "agent + status=error",
            lambda i: TraceFilters(agent=agents[i % AGENTS].username, status="error"),
            lambda i: {"agent": agents[i % AGENTS].pk, "status__exact": "error"},
        ),
        (
            "user",
            lambda i: TraceFilters(user_id=f"u{(i * 7919) % USERS}"),
            lambda i: {"user": f"u{(i * 7919) % USERS}"},
        ),
        ("model", lambda i: TraceFilters(model=MODELS[i % len(MODELS)]), lambda i: {"model": MODELS[i % len(MODELS)]}),
        (
            "agent + one day",
            lambda i: TraceFilters(
                agent=agents[i % AGENTS].username, since=day_start, until=day_start + timedelta(days=1)
            ),
            lambda i: {"agent": agents[i % AGENTS].pk, "day": day.isoformat()},
        ),
        ("trace id", lambda i: TraceFilters(trace_id=some_trace), lambda i: {"q": some_trace}),
    ]
    for label, filters, params in cases:
        rounds = iter(range(10_000))
        samples = _timed(
            lambda f=filters, r=rounds: trace_page(user=admin, filters=f(next(r)), cursor=None, limit=50), 40
        )
        bench.record(
            f"filtered traces page ({label}) over {total:,} spans",
            statistics.median(samples),
            "ms",
            baseline=baseline,
            baseline_name="unfiltered first page, plain SQL",
            target="<= 50 ms",
            note=f"trace_page() in-process, 50 rows, median of 40 (values varied), p99 {_p99(samples):.1f} ms",
        )
        rounds = iter(range(10_000))
        samples = _timed(lambda p=params, r=rounds: client.get("/admin/traces/trace/", p(next(r))), 15)
        bench.record(
            f"admin trace list ({label}) over {total:,} spans",
            statistics.median(samples),
            "ms",
            baseline=baseline,
            baseline_name="unfiltered first page, plain SQL",
            note=f"whole admin page in-process (filter choices, capped count), median of 15, p99 {_p99(samples):.1f}ms",
        )


if __name__ == "__main__":
    # A standalone run against $DATABASE_URL (kept between runs): figures are printed, not recorded.
    import os
    import sys

    class _Printer:
        scale = float(os.environ.get("BENCH_SCALE", "1"))

        def setup_django(self):
            import django

            os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentplatform.settings")
            django.setup()

        def record(self, name, value, unit, *, baseline=None, baseline_name="", target="", note="", ratio=None):
            ratio = f" ratio {value / baseline:.3f} of {baseline:.2f} ({baseline_name})" if baseline else ""
            print(f"{name}: {value:.3f} {unit}{ratio} target {target or '-'}; {note}", flush=True)

    run(_Printer())
    sys.exit(0)
