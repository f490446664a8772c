"""The traces admin: the list and its filters, the waterfall, prices (edit, read-only, reprice),
unpriced models, reprice jobs; bounded queries."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditEvent
from tests.traces.trace_data import S, agent_run, store_trace
from traces.models import ModelPrice, RepriceJob, Trace

pytestmark = pytest.mark.django_db
TRACES = "/admin/traces/trace/"
PRICES = "/admin/traces/modelprice/"
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def staff(client, user_factory):
    def login(role="analyst"):
        user = user_factory(role=role)
        client.force_login(user)
        return client

    return login


@pytest.fixture
def agent(user_factory):
    return user_factory(role="agent", username="agent-w")


@pytest.fixture
def price(db):
    return ModelPrice.objects.create(
        model="test-model-*",
        input_per_million=Decimal("2"),
        output_per_million=Decimal("8"),
        valid_from=datetime(2026, 1, 1, tzinfo=UTC),
    )


def rows_of(html: str) -> list[str]:
    return re.findall(r'<tr class="traces-span[^"]*">\s*<td class="traces-name traces-indent-(\d+)"', html)


def test_the_list_shows_traces_with_duration_tokens_and_cost(staff, agent, price):
    store_trace(agent=agent, spans=agent_run(), start=T0, user_id="user-42")
    response = staff().get(TRACES)
    assert response.status_code == 200
    html = response.content.decode()
    assert "invoke_agent support" in html and "agent-w" in html and "user-42" in html
    assert "900.0 ms" in html and "2,800" in html and "0.0074" in html


def test_list_filters_and_trace_id_search(staff, agent, user_factory, price):
    other = user_factory(role="agent", username="agent-v")
    mine = store_trace(agent=agent, spans=agent_run("test-model-a"), start=T0, user_id="u1")
    theirs = store_trace(
        agent=other, spans=agent_run("test-model-b", error=True), start=T0 - timedelta(days=1), user_id="u2"
    )
    client = staff()

    def listed(params):
        html = client.get(TRACES, params).content.decode()
        return {t.trace_id for t in (mine, theirs) if f"/admin/traces/trace/{t.pk}/change/" in html}

    assert listed({"agent": str(other.pk)}) == {theirs.trace_id}
    assert listed({"user": "u1"}) == {mine.trace_id}
    assert listed({"model": "test-model-b"}) == {theirs.trace_id}
    assert listed({"status__exact": "error"}) == {theirs.trace_id}
    assert listed({"day": "2026-12-01"}) == {mine.trace_id}
    assert listed({"q": theirs.trace_id.upper()}) == {theirs.trace_id}
    assert listed({"q": "nothing"}) == set()
    assert listed({"user": "u1", "agent": str(agent.pk)}) == {mine.trace_id}


def test_the_experiment_filter_takes_an_id_or_a_key(staff, agent, price):
    from experiments.models import Experiment

    experiment = Experiment.objects.create(
        key="tone", name="Tone", target_prompt_type="support", primary_metric="tokens", user_percentage=50
    )
    linked = store_trace(agent=agent, spans=agent_run(), start=T0, experiment_id=experiment.pk)
    store_trace(agent=agent, spans=agent_run(), start=T0 + timedelta(seconds=1))
    client = staff()

    def listed(params):
        html = client.get(TRACES, params).content.decode()
        return [pk for pk in Trace.objects.values_list("pk", flat=True) if f"/admin/traces/trace/{pk}/change/" in html]

    assert listed({"experiment": str(experiment.pk)}) == [linked.pk]
    assert listed({"experiment": "tone"}) == [linked.pk]
    assert listed({"experiment": "no-such-experiment"}) == []  # not every trace under a filter that looks applied


def test_the_list_never_counts_the_whole_table(staff, agent, price):
    for i in range(3):
        store_trace(agent=agent, spans=[S()], start=T0 + timedelta(seconds=i))
    client = staff()
    with CaptureQueriesContext(connection) as queries:
        assert client.get(TRACES).status_code == 200
    counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper() and "traces_trace" in q["sql"]]
    assert counts and all("LIMIT" in sql.upper() for sql in counts), counts


def test_the_trace_page_draws_the_span_tree_as_a_waterfall(staff, agent, price):
    spans = [
        S(name="root", start_ms=0, duration_ms=1000),
        S(
            name="plan",
            start_ms=0,
            duration_ms=250,
            parent=0,
            operation="chat",
            model="test-model-a",
            input_tokens=100,
            output_tokens=10,
            content={"input": [{"role": "user", "content": "<b>Where is my order?</b>"}]},
        ),
        S(name="tool", start_ms=500, duration_ms=500, parent=0, operation="execute_tool", status="error"),
        S(
            name="answer",
            start_ms=600,
            duration_ms=200,
            parent=2,
            operation="chat",
            model="unknown-model",
            input_tokens=5,
            output_tokens=5,
        ),
    ]
    trace = store_trace(agent=agent, spans=spans, start=T0)
    response = staff().get(f"{TRACES}{trace.pk}/change/")
    assert response.status_code == 200
    html = response.content.decode()
    assert rows_of(html) == ["0", "1", "1", "2"]
    # Bars on the shared axis, in thousandths of the trace's 1,000 ms.
    assert re.findall(r'<rect class="traces-bar-(\w+)" x="([\d.]+)" y="2" width="([\d.]+)"', html) == [
        ("other", "0.0", "1000.0"),
        ("llm", "0.0", "250.0"),
        ("error", "500.0", "500.0"),
        ("llm", "600.0", "200.0"),
    ]
    assert "&lt;b&gt;Where is my order?&lt;/b&gt;" in html  # stored messages shown, escaped
    assert "unpriced" in html
    assert ' style="' not in html.split('id="content"')[1]  # CSP: the page's own markup has no inline style
    assert "traces/traces.css" in html


def test_the_trace_page_reads_a_bounded_number_of_queries_however_many_spans(staff, agent, price):
    client = staff()
    small = store_trace(agent=agent, spans=[S(start_ms=i, parent=0 if i else None) for i in range(3)], start=T0)
    large = store_trace(agent=agent, spans=[S(start_ms=i, parent=0 if i else None) for i in range(400)], start=T0)
    client.get(f"{TRACES}{small.pk}/change/")  # warm the session and permission caches
    counts = []
    for trace in (small, large):
        with CaptureQueriesContext(connection) as queries:
            assert client.get(f"{TRACES}{trace.pk}/change/").status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_an_unknown_trace_page_is_a_404(staff):
    assert staff().get(f"{TRACES}99999999/change/").status_code == 404


def test_analysts_read_prices_but_cannot_edit_them(staff, price):
    client = staff("analyst")
    assert client.get(PRICES).status_code == 200
    page = client.get(f"{PRICES}{price.pk}/change/")
    assert page.status_code == 200 and 'name="input_per_million"' not in page.content.decode()
    assert client.get(f"{PRICES}add/").status_code == 403


def test_an_admin_adds_a_price_audited_and_is_offered_a_reprice(staff, django_capture_on_commit_callbacks):
    client = staff("admin")
    form = {
        "provider": "",
        "model": "acme-*",
        "input_per_million": "1",
        "output_per_million": "2",
        "cached_input_per_million": "",
        "cache_write_per_million": "",
        "reasoning_per_million": "",
        "currency": "USD",
        "valid_from_0": "2026-11-01",
        "valid_from_1": "00:00:00",
        "note": "",
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"{PRICES}add/", form, follow=True)
    assert response.status_code == 200
    assert ModelPrice.objects.filter(model="acme-*").exists()
    assert "Reprice spans since 2026-11-01" in response.content.decode()
    assert AuditEvent.objects.filter(action="model_price.created").count() == 1
    again = client.post(f"{PRICES}add/", form, follow=True)
    assert "Model price with this Provider, Model and Valid from already exists." in again.content.decode()
    assert ModelPrice.objects.filter(model="acme-*").count() == 1
    bad = client.post(f"{PRICES}add/", {**form, "model": "acme[", "input_per_million": "-1"})
    assert bad.status_code == 200 and "A price is zero or more." in bad.content.decode()


def test_reprice_asks_for_confirmation_then_runs_the_job(
    staff, agent, price, settings, django_capture_on_commit_callbacks
):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    trace = store_trace(agent=agent, spans=agent_run(), start=T0)
    ModelPrice.objects.filter(pk=price.pk).update(input_per_million=Decimal("4"))
    client = staff("operator")
    confirm = client.get(f"{PRICES}reprice/", {"since": "2026-11-30"})
    assert confirm.status_code == 200 and 'value="2026-11-30"' in confirm.content.decode()
    assert Trace.objects.get(pk=trace.pk).cost == trace.cost  # nothing happens on GET
    with django_capture_on_commit_callbacks(execute=True):
        filed = client.post(f"{PRICES}reprice/", {"since_0": "2026-11-30", "since_1": "00:00:00"})
    job = RepriceJob.objects.get()
    assert filed.status_code == 302 and filed.url == f"/admin/traces/repricejob/{job.pk}/change/"
    done = client.get(filed.url)
    assert job.state == RepriceJob.State.DONE and job.spans_done == 4
    assert done.status_code == 200 and "4 of 4 spans" in done.content.decode()
    assert Trace.objects.get(pk=trace.pk).cost > trace.cost
    assert client.get("/admin/traces/repricejob/").status_code == 200


def test_reprice_needs_its_permission(staff):
    assert staff("analyst").get(f"{PRICES}reprice/").status_code == 403


def test_unpriced_models_are_counted_with_a_link_to_add_a_price(staff, agent, price):
    now = timezone.now()
    store_trace(agent=agent, spans=agent_run("mystery-1"), start=now - timedelta(hours=1))
    store_trace(agent=agent, spans=agent_run("mystery-1"), start=now - timedelta(hours=2))
    store_trace(agent=agent, spans=agent_run("test-model-a"), start=now - timedelta(hours=1))
    store_trace(agent=agent, spans=agent_run("mystery-old"), start=now - timedelta(days=40))
    html = staff("admin").get(f"{PRICES}unpriced/").content.decode()
    rows = re.findall(r"<tr><td>([^<]*)</td><td>([^<]*)</td><td>(\d+)</td>", html)
    assert rows == [("testai", "mystery-1", "4")]
    assert "/admin/traces/modelprice/add/?model=mystery-1&amp;provider=testai" in html


def test_the_list_counts_only_a_few_pages_ahead_and_says_so(staff, agent, price, monkeypatch):
    from traces import admin as traces_admin

    monkeypatch.setattr(traces_admin.TraceAdmin, "list_per_page", 1)
    monkeypatch.setattr(traces_admin, "LOOKAHEAD_PAGES", 1)
    for i in range(5):
        store_trace(agent=agent, spans=[S()], start=T0 + timedelta(seconds=i))
    client = staff()
    first = client.get(TRACES).content.decode()
    assert "Counted no further than 3 traces" in first
    last = client.get(TRACES, {"p": "5"}).content.decode()  # counted up to page 5 + 1: all 5
    assert "Counted no further" not in last and "/change/" in last


def test_the_reprice_action_leads_to_the_confirmation_from_the_earliest_selected_price(staff, price):
    later = ModelPrice.objects.create(
        model="test-model-x", input_per_million=1, output_per_million=1, valid_from=datetime(2026, 5, 2, tzinfo=UTC)
    )
    response = staff("operator").post(
        PRICES, {"action": "reprice_since_selected", "_selected_action": [price.pk, later.pk]}
    )
    assert response.status_code == 302
    assert response.url == "/admin/traces/modelprice/reprice/?since=2026-01-01"
    assert not RepriceJob.objects.exists()  # the action only asks; the form files the job


def test_the_price_list_says_which_base_price_an_unset_one_takes(staff, price):
    html = staff("admin").get(PRICES).content.decode()
    # test-model-*: input 2, output 8, nothing else set
    assert "2 / as in / as in / 8 / as out USD" in html
    assert "traces/traces.css" in html  # the list's own stylesheet (model names never broken)
