"""GET /api/v1/traces and /api/v1/traces/{id}: filters, keyset pages, who sees what, validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.traces.trace_data import S, agent_run, new_trace_id, store_trace
from traces.models import ModelPrice, SpanStatus

pytestmark = pytest.mark.django_db
LIST = "/api/v1/traces"
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def prices(db):
    ModelPrice.objects.create(
        model="test-model-*",
        input_per_million=Decimal("2"),
        output_per_million=Decimal("8"),
        cached_input_per_million=Decimal("0.5"),
        valid_from=datetime(2026, 1, 1, tzinfo=UTC),
    )


@pytest.fixture
def agents(user_factory):
    return user_factory(role="agent", username="agent-a"), user_factory(role="agent", username="agent-b")


def trace_ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["trace_id"] for row in response.json()["results"]]


def test_an_analyst_lists_every_agents_traces_newest_first(auth_client, agents, prices):
    first = store_trace(agent=agents[0], spans=agent_run(), start=T0)
    second = store_trace(agent=agents[1], spans=agent_run(), start=T0 + timedelta(minutes=5))
    response = auth_client("analyst").get(LIST)
    assert trace_ids(response) == [second.trace_id, first.trace_id]
    row = response.json()["results"][1]
    assert row["agent"] == "agent-a"
    assert row["span_count"] == 4
    assert row["input_tokens"] == 2500 and row["output_tokens"] == 300
    # 1,500 base input at 2, 1,000 cache reads at 0.5, 300 output at 8, per million.
    assert Decimal(row["cost"]) == Decimal("0.0059")
    assert row["models"] == ["test-model-a"]


def test_each_filter_narrows_the_list(auth_client, agents, prices):
    from experiments.models import Experiment, Variant

    experiment = Experiment.objects.create(key="exp-a", name="A", target_prompt_type="support", user_percentage=100)
    control = Variant.objects.create(experiment=experiment, key="control", weight=50)
    treatment = Variant.objects.create(experiment=experiment, key="treatment", weight=50)
    a = store_trace(
        agent=agents[0],
        spans=agent_run("test-model-a"),
        start=T0,
        user_id="u1",
        experiment_id=experiment.pk,
        variant_id=control.pk,
    )
    b = store_trace(
        agent=agents[1],
        spans=agent_run("test-model-b", error=True),
        start=T0 + timedelta(hours=1),
        user_id="u2",
        experiment_id=experiment.pk,
        variant_id=treatment.pk,
    )
    c = store_trace(agent=agents[1], spans=agent_run("test-model-a"), start=T0 + timedelta(days=1), user_id="u1")
    client = auth_client("operator")
    assert trace_ids(client.get(LIST, {"agent": "agent-b"})) == [c.trace_id, b.trace_id]
    assert trace_ids(client.get(LIST, {"user": "u1"})) == [c.trace_id, a.trace_id]
    assert trace_ids(client.get(LIST, {"model": "test-model-b"})) == [b.trace_id]
    assert trace_ids(client.get(LIST, {"status": "error"})) == [b.trace_id]
    assert trace_ids(client.get(LIST, {"experiment": "exp-a"})) == [b.trace_id, a.trace_id]
    assert trace_ids(client.get(LIST, {"experiment": "exp-a", "variant": "control"})) == [a.trace_id]
    assert trace_ids(client.get(LIST, {"since": "2026-12-01T12:30:00Z"})) == [c.trace_id, b.trace_id]
    assert trace_ids(client.get(LIST, {"until": "2026-12-01T12:30:00Z"})) == [a.trace_id]
    assert trace_ids(client.get(LIST, {"trace_id": b.trace_id})) == [b.trace_id]
    assert trace_ids(client.get(LIST, {"agent": "agent-a", "model": "test-model-a", "user": "u1"})) == [a.trace_id]


def test_names_that_match_nothing_give_an_empty_page(auth_client, agents, prices):
    store_trace(agent=agents[0], spans=agent_run(), start=T0)
    client = auth_client("analyst")
    for params in ({"agent": "nobody"}, {"experiment": "no-such"}, {"model": "nope"}, {"user": "ghost"}):
        assert trace_ids(client.get(LIST, params)) == [], params


def test_cursor_pages_walk_every_trace_once_even_with_equal_start_times(auth_client, agents, prices):
    stored = [store_trace(agent=agents[0], spans=[S()], start=T0 + timedelta(seconds=i // 2)) for i in range(7)]
    client = auth_client("analyst")
    seen, cursor, pages = [], None, 0
    while True:
        params = {"page_size": 3, **({"cursor": cursor} if cursor else {})}
        body = client.get(LIST, params).json()
        seen += [row["trace_id"] for row in body["results"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    expected = [t.trace_id for t in sorted(stored, key=lambda t: (t.start_time, t.pk), reverse=True)]
    assert seen == expected
    assert pages == 3


def test_page_size_is_capped(auth_client, agents, prices, settings):
    settings.TRACE_MAX_PAGE_SIZE = 2
    for i in range(3):
        store_trace(agent=agents[0], spans=[S()], start=T0 + timedelta(seconds=i))
    body = auth_client("analyst").get(LIST, {"page_size": 100}).json()
    assert len(body["results"]) == 2 and body["next_cursor"]


@pytest.mark.parametrize(
    "params, field",
    [
        ({"status": "bad"}, "status"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-12-01T00:00:00"}, "since"),  # no time zone
        ({"since": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z"}, "until"),
        ({"trace_id": "XYZ"}, "trace_id"),
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "abc"}, "page_size"),
        ({"variant": "control"}, "variant"),
        ({"experiment": "has spaces"}, "experiment"),
        ({"agent": "a" * 151}, "agent"),
        ({"user": "x\x00y"}, "user"),
        ({"model": ""}, "model"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "WzEsMl0"}, "cursor"),  # base64 of [1,2]: decodes, but is not ours
        # ["2026-12-01T00:00:00+00:00", 10**30]: our shape, an id past bigint
        ({"cursor": "WyIyMDI2LTEyLTAxVDAwOjAwOjAwKzAwOjAwIiwxMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwXQ"}, "cursor"),
    ],
)
def test_invalid_query_parameters_get_the_400_envelope(auth_client, params, field):
    response = auth_client("analyst").get(LIST, params)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in str(error["details"])


def test_an_agent_sees_only_its_own_traces(auth_client, agents, prices):
    own = store_trace(agent=agents[0], spans=agent_run(), start=T0)
    other = store_trace(agent=agents[1], spans=agent_run(), start=T0)
    client = auth_client(user=agents[0])
    assert trace_ids(client.get(LIST)) == [own.trace_id]
    assert trace_ids(client.get(LIST, {"agent": "agent-b"})) == []
    assert client.get(f"{LIST}/{own.trace_id}").status_code == 200
    response = client.get(f"{LIST}/{other.trace_id}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_people_without_a_trace_permission_are_refused(user_factory, api_client):
    assert api_client.get(LIST).status_code == 401
    nobody = user_factory(role="analyst")
    nobody.groups.clear()
    api_client.force_authenticate(nobody)
    assert api_client.get(LIST).status_code == 403


def test_a_trace_comes_with_its_spans_in_tree_order(auth_client, agents, prices):
    spans = [
        S(name="root", start_ms=0, duration_ms=1000),
        S(name="late child", start_ms=500, duration_ms=100, parent=0),
        S(name="early child", start_ms=100, duration_ms=300, parent=0),
        S(
            name="grandchild",
            start_ms=150,
            duration_ms=50,
            parent=2,
            operation="chat",
            model="test-model-a",
            input_tokens=10,
            output_tokens=5,
            content={"input": [{"role": "user", "content": "hi"}]},
        ),
    ]
    trace = store_trace(agent=agents[0], spans=spans, start=T0)
    body = auth_client("analyst").get(f"{LIST}/{trace.trace_id}").json()
    assert [(s["name"], s["depth"]) for s in body["spans"]] == [
        ("root", 0),
        ("early child", 1),
        ("grandchild", 2),
        ("late child", 1),
    ]
    by_name = {s["name"]: s for s in body["spans"]}
    assert by_name["grandchild"]["parent_span_id"] == by_name["early child"]["span_id"]
    assert by_name["root"]["parent_span_id"] is None
    assert by_name["grandchild"]["offset_ms"] == 150
    assert by_name["grandchild"]["content"] == {"input": [{"role": "user", "content": "hi"}]}
    assert Decimal(by_name["grandchild"]["cost"]) == Decimal("0.00006")
    assert body["spans_truncated"] is False


def test_a_span_whose_parent_never_arrived_is_shown_as_a_root(auth_client, agents, prices):
    trace = store_trace(agent=agents[0], spans=[S(name="orphan", start_ms=5)], start=T0)
    from traces.models import Span

    Span.objects.filter(trace_id=trace.trace_id).update(parent_span_id="00000000000000ff")
    body = auth_client("analyst").get(f"{LIST}/{trace.trace_id}").json()
    assert [(s["name"], s["depth"]) for s in body["spans"]] == [("orphan", 0)]


def test_two_agents_with_the_same_trace_id_are_told_apart_by_agent(auth_client, agents, prices):
    trace_id = new_trace_id()
    store_trace(agent=agents[0], spans=[S(name="from a")], start=T0, trace_id=trace_id)
    store_trace(agent=agents[1], spans=[S(name="from b")], start=T0 - timedelta(hours=1), trace_id=trace_id)
    client = auth_client("analyst")
    assert client.get(f"{LIST}/{trace_id}").json()["spans"][0]["name"] == "from a"
    assert client.get(f"{LIST}/{trace_id}", {"agent": "agent-b"}).json()["spans"][0]["name"] == "from b"


def test_a_malformed_trace_id_is_a_400_and_an_unknown_one_a_404(auth_client):
    client = auth_client("analyst")
    assert client.get(f"{LIST}/not-hex").status_code == 400
    assert client.get(f"{LIST}/{'0' * 32}").status_code == 404


def test_spans_past_the_shown_limit_are_flagged(auth_client, agents, prices, settings):
    settings.TRACE_MAX_SPANS_SHOWN = 100
    trace = store_trace(agent=agents[0], spans=[S(start_ms=i) for i in range(120)], start=T0)
    body = auth_client("analyst").get(f"{LIST}/{trace.trace_id}").json()
    assert len(body["spans"]) == 100 and body["spans_truncated"] is True


def test_status_filter_matches_the_trace_status(auth_client, agents, prices):
    failed = store_trace(agent=agents[0], spans=[S(status=SpanStatus.ERROR)], start=T0)
    store_trace(agent=agents[0], spans=[S()], start=T0)
    assert trace_ids(auth_client("analyst").get(LIST, {"status": "error"})) == [failed.trace_id]
