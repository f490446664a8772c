"""Repricing spans after a price change: costs before and after, trace totals, progress, audit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from audit.models import AuditEvent
from tests.traces.trace_data import S, agent_run, store_trace
from traces import reprice
from traces.models import ModelPrice, RepriceJob, Span, Trace
from traces.pricing import PriceBook, Usage, cost_of

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 11, 28, 23, 59, 59, tzinfo=UTC)  # runs across midnight into a second partition


@pytest.fixture
def agent(user_factory):
    return user_factory(role="agent", username="agent-r")


@pytest.fixture
def old_price(db):
    return ModelPrice.objects.create(
        model="test-model-*",
        input_per_million=Decimal("2"),
        output_per_million=Decimal("8"),
        valid_from=datetime(2026, 1, 1, tzinfo=UTC),
    )


def spans_cost(trace: Trace) -> list[Decimal | None]:
    return list(
        Span.objects.filter(trace_id=trace.trace_id).order_by("start_time", "id").values_list("cost", flat=True)
    )


def expected_cost(span: Span, price: ModelPrice) -> Decimal:
    usage = Usage(
        span.input_tokens, span.output_tokens, span.cache_read_tokens, span.cache_write_tokens, span.reasoning_tokens
    )
    return cost_of(price, usage)


def test_a_new_price_reprices_spans_since_its_date_and_the_traces_totals(
    agent, old_price, django_capture_on_commit_callbacks, settings
):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.TRACE_REPRICE_CHUNK = 100  # several chunks
    before = store_trace(agent=agent, spans=agent_run("test-model-a"), start=T0 - timedelta(days=3))
    after = [
        store_trace(agent=agent, spans=agent_run("test-model-a"), start=T0 + timedelta(minutes=i)) for i in range(30)
    ]
    unknown = store_trace(agent=agent, spans=agent_run("mystery-model"), start=T0)
    assert unknown.unpriced_spans == 2 and unknown.cost is None
    old_costs = spans_cost(before)
    # A cheaper price from T0 on, and a price for the unknown model.
    new_price = ModelPrice.objects.create(
        model="test-model-*",
        input_per_million=Decimal("1"),
        cached_input_per_million=Decimal("0.1"),
        output_per_million=Decimal("4"),
        valid_from=T0 - timedelta(hours=1),
    )
    mystery = ModelPrice.objects.create(
        model="mystery-model",
        input_per_million=Decimal("5"),
        output_per_million=Decimal("5"),
        valid_from=datetime(2026, 1, 1, tzinfo=UTC),
    )
    with django_capture_on_commit_callbacks(execute=True):
        job = reprice.spans_reprice(actor=agent, since=T0 - timedelta(hours=2))
    job.refresh_from_db()
    assert job.state == RepriceJob.State.DONE
    assert job.spans_total == job.spans_done == 31 * 4
    assert job.finished_at is not None
    # Spans before the date untouched; those after at the new price, checked span by span.
    assert spans_cost(before) == old_costs
    for trace in [*after, unknown]:
        price = new_price if trace in after else mystery
        spans = list(Span.objects.filter(trace_id=trace.trace_id))
        for span in spans:
            assert span.cost == (expected_cost(span, price) if span.input_tokens is not None else None)
        trace.refresh_from_db()
        assert trace.cost == sum(s.cost for s in spans if s.cost is not None)
        assert trace.unpriced_spans == 0
    # 1,000 in at 1 + 200 out at 4; 500 in at 1 + 1,000 cached at 0.1 + 100 out at 4; per million.
    assert after[0].cost == Decimal("0.0018") + Decimal("0.0010")
    requested = AuditEvent.objects.get(action="spans.reprice_requested")
    assert requested.resource_id == str(job.pk) and requested.actor_id == agent.pk
    done = AuditEvent.objects.get(action="spans.repriced")
    assert done.details["spans"] == 124 and done.details["traces_changed"] == 31


def test_deleting_the_only_price_leaves_spans_unpriced_and_counted(agent, old_price):
    trace = store_trace(agent=agent, spans=agent_run("test-model-a"), start=T0)
    assert trace.cost is not None
    old_price.delete()
    job = RepriceJob.objects.create(since=T0 - timedelta(days=1))
    reprice.reprice_job_run(job_id=job.pk)
    trace.refresh_from_db()
    assert trace.cost is None and trace.unpriced_spans == 2
    assert spans_cost(trace) == [None] * 4


def test_progress_is_written_chunk_by_chunk(agent, old_price, settings, monkeypatch):
    settings.TRACE_REPRICE_CHUNK = 100
    for i in range(60):
        store_trace(
            agent=agent,
            spans=[S(model="test-model-a", input_tokens=10, output_tokens=1)],
            start=T0 + timedelta(seconds=i),
        )
    job = RepriceJob.objects.create(since=T0 - timedelta(days=1))
    seen = []
    real = reprice._set_progress

    def spy(job, **fields):
        real(job, **fields)
        seen.append(RepriceJob.objects.get(pk=job.pk).spans_done)

    monkeypatch.setattr(reprice, "_set_progress", spy)
    reprice.reprice_job_run(job_id=job.pk)
    # Spans after T0 across two UTC days: 1 on the first (23:59:59), 59 on the second; chunks of 100.
    assert seen == [0, 1, 60, 60]


def test_a_failed_run_is_recorded_and_a_rerun_finishes_the_job(
    agent, old_price, monkeypatch, django_capture_on_commit_callbacks
):
    trace = store_trace(agent=agent, spans=agent_run("test-model-a"), start=T0)
    ModelPrice.objects.filter(pk=old_price.pk).update(input_per_million=Decimal("20"))
    job = RepriceJob.objects.create(since=T0 - timedelta(days=1))

    def broken(keys):
        raise RuntimeError("database went away")

    monkeypatch.setattr(reprice, "traces_recompute_cost", broken)
    with pytest.raises(RuntimeError), django_capture_on_commit_callbacks(execute=True):
        reprice.reprice_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.state == RepriceJob.State.FAILED and "database went away" in job.error
    assert AuditEvent.objects.filter(action="spans.reprice_failed", success=False).count() == 1
    monkeypatch.undo()
    reprice.reprice_job_run(job_id=job.pk)
    job.refresh_from_db()
    trace.refresh_from_db()
    assert job.state == RepriceJob.State.DONE
    price = ModelPrice.objects.get(pk=old_price.pk)
    assert trace.cost == sum(
        expected_cost(s, price) for s in Span.objects.filter(trace_id=trace.trace_id, input_tokens__isnull=False)
    )


def test_a_finished_job_redelivered_does_nothing(agent, old_price):
    store_trace(agent=agent, spans=agent_run("test-model-a"), start=T0)
    job = RepriceJob.objects.create(since=T0 - timedelta(days=1), state=RepriceJob.State.DONE, spans_done=7)
    reprice.reprice_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.spans_done == 7


def test_a_reprice_with_no_spans_since_the_date_is_done_at_once(agent):
    job = RepriceJob.objects.create(since=datetime(2030, 1, 1, tzinfo=UTC))
    reprice.reprice_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert (job.state, job.spans_total, job.spans_done) == (RepriceJob.State.DONE, 0, 0)


def test_the_price_book_is_loaded_fresh_for_each_run(agent, old_price):
    trace = store_trace(agent=agent, spans=agent_run("test-model-a"), start=T0, book=PriceBook([]))
    assert trace.cost is None  # stored before any price was known
    reprice.reprice_job_run(job_id=RepriceJob.objects.create(since=T0 - timedelta(days=1)).pk)
    trace.refresh_from_db()
    assert trace.cost is not None and trace.unpriced_spans == 0


def test_a_reprice_prices_the_spans_ingest_prices_and_no_others(agent, prices):
    """An invoke_agent span repeating its child's usage is not priced, at ingest or on a reprice."""
    from tests.traces.conftest import export_request, span
    from traces.ingest import spans_ingest

    trace = "ab" * 16
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    usage = {"gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 200}
    export = export_request(
        [
            span(
                trace=trace,
                span_id="01" * 8,
                name="invoke_agent support",
                start=start,
                duration_ms=900,
                attrs={"gen_ai.operation.name": "invoke_agent", "gen_ai.request.model": "gpt-4.1", **usage},
            ),
            span(
                trace=trace,
                span_id="02" * 8,
                parent="01" * 8,
                name="chat gpt-4.1",
                start=start + timedelta(milliseconds=10),
                attrs={
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4.1",
                    **usage,
                },
            ),
            span(
                trace=trace,
                span_id="03" * 8,
                parent="01" * 8,
                name="chat mystery",
                start=start + timedelta(milliseconds=20),
                attrs={"gen_ai.operation.name": "chat", "gen_ai.request.model": "mystery-model", **usage},
            ),
        ]
    )
    spans_ingest(export=export, agent=agent)
    stored = Trace.objects.get(trace_id=trace)
    chat_cost = Decimal("2.00") * 1000 / 1_000_000 + Decimal("8.00") * 200 / 1_000_000
    assert stored.cost == chat_cost
    assert stored.unpriced_spans == 1  # the mystery model; the agent span is not a model call
    assert Span.objects.get(span_id="01" * 8).cost is None

    job = reprice.spans_reprice(actor=None, since=start - timedelta(minutes=1))
    reprice.reprice_job_run(job_id=job.pk)
    stored.refresh_from_db()
    assert stored.cost == chat_cost
    assert stored.unpriced_spans == 1
    assert Span.objects.get(span_id="01" * 8).cost is None
