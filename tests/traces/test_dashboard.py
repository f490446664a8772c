"""The monitoring dashboard's traces panels, each number checked against numpy over the same spans."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy
import pytest
from django.urls import reverse
from django.utils import timezone

from tests.traces.trace_data import S, store_trace
from traces.models import ModelPrice, Span
from traces.selectors import cost_by_day, model_health, top_traces_by_cost

pytestmark = pytest.mark.django_db
MODELS = ("dash-a", "dash-b", "dash-c")


@pytest.fixture
def spans_over_three_days(user_factory):
    """40 traces of 1-6 spans over three days, random models, tokens, durations and errors."""
    for model, price in zip(MODELS, ("1", "3", "10"), strict=True):
        ModelPrice.objects.create(
            model=model,
            input_per_million=Decimal(price),
            output_per_million=Decimal(price) * 4,
            valid_from=datetime(2026, 1, 1, tzinfo=UTC),
        )
    agents = [user_factory(role="agent", username=f"dash-agent-{i}") for i in range(2)]
    rng = numpy.random.default_rng(7)
    start = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
    traces = []
    for index in range(40):
        spans = [S(name="root", duration_ms=5000)]
        for child in range(int(rng.integers(0, 6))):
            spans.append(
                S(
                    name=f"call {child}",
                    start_ms=float(rng.uniform(0, 4000)),
                    duration_ms=float(rng.gamma(2, 300)),
                    parent=0,
                    operation="chat",
                    model=str(rng.choice(MODELS)),
                    input_tokens=int(rng.integers(10, 5000)),
                    output_tokens=int(rng.integers(1, 800)),
                    status="error" if rng.random() < 0.2 else "ok",
                )
            )
        moment = start + timedelta(minutes=float(rng.uniform(0, 3 * 24 * 60)))
        traces.append(store_trace(agent=agents[index % 2], spans=spans, start=moment))
    return start, start + timedelta(days=3), agents, traces


def test_cost_and_tokens_per_day_by_model_match_a_sum_over_the_spans(spans_over_three_days):
    since, until, _agents, _traces = spans_over_three_days
    data = cost_by_day(since=since, until=until, by="model")
    expected_cost, expected_tokens = defaultdict(float), defaultdict(int)
    for span in Span.objects.exclude(response_model=""):
        key = (span.response_model, span.start_time.astimezone(UTC).date())
        expected_cost[key] += float(span.cost)
        expected_tokens[key] += span.input_tokens + span.output_tokens
    got_cost = {(name, day): v["cost"] for name, days in data["series"].items() for day, v in days.items()}
    got_tokens = {(name, day): v["tokens"] for name, days in data["series"].items() for day, v in days.items()}
    assert got_cost.keys() == expected_cost.keys()
    for key, value in expected_cost.items():
        assert got_cost[key] == pytest.approx(value, rel=1e-9)
    assert got_tokens == dict(expected_tokens)
    assert [row["name"] for row in data["totals"]] == sorted(
        MODELS, key=lambda m: -sum(v for (name, _), v in expected_cost.items() if name == m)
    )


def test_cost_per_day_by_agent_matches_the_traces_totals(spans_over_three_days):
    since, until, agents, traces = spans_over_three_days
    data = cost_by_day(since=since, until=until, by="agent")
    for agent in agents:
        # Every span of a trace starts within its trace's day or the next; totals over all days agree.
        expected = sum(float(t.cost or 0) for t in traces if t.agent_id == agent.pk)
        got = sum(v["cost"] for v in data["series"][agent.username].values())
        assert got == pytest.approx(expected, rel=1e-9)


def test_groups_past_the_top_are_summed_as_other(spans_over_three_days):
    since, until, _agents, _traces = spans_over_three_days
    data = cost_by_day(since=since, until=until, by="model", top=1)
    assert set(data["series"]) == {data["totals"][0]["name"], "other"}
    total = sum(v["cost"] for days in data["series"].values() for v in days.values())
    assert total == pytest.approx(sum(row["cost"] for row in data["totals"]), rel=1e-9)


def test_error_rate_and_p95_by_model_match_numpy(spans_over_three_days):
    since, until, _agents, _traces = spans_over_three_days
    rows = {row["model"]: row for row in model_health(since=since, until=until)}
    assert set(rows) == set(MODELS)
    for model in MODELS:
        durations = numpy.array(list(Span.objects.filter(response_model=model).values_list("duration_ms", flat=True)))
        errors = Span.objects.filter(response_model=model, status="error").count()
        assert rows[model]["spans"] == len(durations)
        assert rows[model]["error_rate"] == pytest.approx(errors / len(durations))
        assert rows[model]["p95_ms"] == pytest.approx(float(numpy.percentile(durations, 95)), rel=1e-9)


def test_top_traces_are_the_costliest_in_the_window(spans_over_three_days):
    since, until, _agents, traces = spans_over_three_days
    top = top_traces_by_cost(since=since + timedelta(days=1), until=until, limit=5)
    inside = [t for t in traces if t.cost is not None and t.start_time >= since + timedelta(days=1)]
    assert [t.pk for t in top] == [t.pk for t in sorted(inside, key=lambda t: (-t.cost, -t.start_time.timestamp()))[:5]]


def test_the_dashboard_shows_the_panels_with_links_to_the_trace_pages(client, user_factory):
    agent = user_factory(role="agent", username="dash-agent")
    ModelPrice.objects.create(
        model="dash-a", input_per_million=1, output_per_million=4, valid_from=datetime(2026, 1, 1, tzinfo=UTC)
    )
    trace = store_trace(
        agent=agent,
        start=timezone.now() - timedelta(minutes=10),
        spans=[
            S(name="root", duration_ms=100),
            S(parent=0, operation="chat", model="dash-a", input_tokens=1000, output_tokens=10),
        ],
    )
    client.force_login(user_factory(role="analyst"))
    response = client.get(reverse("admin:monitoring_dashboard"), {"window": "1h"})
    assert response.status_code == 200
    html = response.content.decode()
    for title in (
        "Cost per day by model",
        "Tokens per day by model",
        "Cost per day by agent",
        "Tokens per day by agent",
    ):
        assert title in html
    assert f'href="/admin/traces/trace/{trace.pk}/change/"' in html
    assert "<td>dash-a</td><td>1</td><td>0</td>" in html


def test_each_series_of_the_per_model_chart_gets_its_own_colour(user_factory):
    """Ten models: seven series and "other", one palette colour each (a ninth took the first's)."""
    from agentplatform.charts import PALETTE

    agent = user_factory(role="agent", username="dash-many")
    start = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    for index in range(10):
        ModelPrice.objects.create(
            model=f"many-{index}",
            input_per_million=Decimal(index + 1),
            output_per_million=Decimal(index + 1),
            valid_from=datetime(2026, 1, 1, tzinfo=UTC),
        )
        spans = [S(name="root"), S(name="chat", parent=0, operation="chat", model=f"many-{index}", input_tokens=1000)]
        store_trace(agent=agent, spans=spans, start=start + timedelta(minutes=index))
    data = cost_by_day(since=start - timedelta(days=1), until=start + timedelta(days=1), by="model")
    assert len(data["series"]) == len(PALETTE)
    assert "other" in data["series"]
