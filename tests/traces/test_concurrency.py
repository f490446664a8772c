"""Batches of one trace ingested at once by several server threads: the totals stay exact."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from tests.traces.conftest import export_request, http_post, span
from traces.models import Span, Trace

TRACES = ["0af7651916cd43dd8448eb211c80319c", "1bf7651916cd43dd8448eb211c80319c", "2cf7651916cd43dd8448eb211c80319c"]
THREADS = 6
SPANS_PER_TRACE = 12


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite serialises every writer by its database lock")
@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_of_one_trace_count_each_span_once(live_server, agent_key):
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)

    def chat(trace: str, number: int):
        return span(
            trace=trace,
            span_id=f"{number + 1:016x}",
            parent="" if number == 0 else f"{1:016x}",
            name="root" if number == 0 else f"chat {number}",
            start=now + timedelta(milliseconds=number * 10),
            duration_ms=5,
            attrs={"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": number + 1},
        )

    # Each thread sends its own spans of every trace (disjoint batches: nothing but the trace lock
    # orders them), then every batch is sent again at once (all duplicates: nothing may move).
    batches = [
        export_request([chat(trace, number) for trace in TRACES for number in range(thread, SPANS_PER_TRACE, THREADS)])
        for thread in range(THREADS)
    ]
    barrier = threading.Barrier(THREADS)
    statuses: list[int] = []

    def send(message):
        body = message.SerializeToString()
        barrier.wait(timeout=30)
        statuses.append(http_post(live_server.url, body, raw_key=agent_key.raw_key).status_code)

    for _round in range(2):
        workers = [threading.Thread(target=send, args=(batch,)) for batch in batches]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
    assert statuses == [200] * THREADS * 2
    assert Span.objects.count() == len(TRACES) * SPANS_PER_TRACE
    assert Trace.objects.count() == len(TRACES)
    for trace in Trace.objects.all():
        assert trace.span_count == SPANS_PER_TRACE and trace.llm_calls == SPANS_PER_TRACE
        assert trace.input_tokens == sum(range(1, SPANS_PER_TRACE + 1))
        assert trace.root_span_name == "root" and trace.start_time == now
        assert trace.end_time == now + timedelta(milliseconds=(SPANS_PER_TRACE - 1) * 10 + 5)
