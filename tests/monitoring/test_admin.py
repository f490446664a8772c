"""The admin dashboard and the CSV exports."""

from __future__ import annotations

import csv
import io
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from agentplatform import counters
from monitoring.models import AgentRun, OperationMinute, SystemSnapshot
from monitoring.recorder import recorder
from monitoring.services import metrics_rollup, system_snapshot
from tests.monitoring.conftest import make_user

pytestmark = pytest.mark.django_db

DASHBOARD = "admin:monitoring_dashboard"


@pytest.fixture
def staff_client(client, django_user_model):
    user = make_user(
        django_user_model,
        "analyst-staff",
        "monitoring.view_metrics",
        "monitoring.view_operationminute",
        "monitoring.view_agentrun",
        "monitoring.view_systemsnapshot",
        is_staff=True,
    )
    client.force_login(user)
    return client


@pytest.fixture
def data(store_name):
    now = datetime.now(UTC)
    for minutes_ago in range(1, 180, 7):  # three hours: every window has several points
        at = now - timedelta(minutes=minutes_ago)
        for duration in (5.0, 50.0, 500.0):
            recorder.observe("rag.retrieve", duration, success=duration < 400, at=at.timestamp())
    recorder.flush()
    metrics_rollup(now=now)
    for index in range(6):
        AgentRun.objects.create(
            run_id=f"run-{index}",
            agent="support-bot",
            workflow="refund",
            steps=5,
            retry_count=index % 3,
            no_progress_count=index % 2,
            critic_score=0.5 + index / 20,
            tokens=100,
            outcome="success" if index % 3 else "failure",
            started_at=now - timedelta(minutes=index * 5 + 1),
            finished_at=now - timedelta(minutes=index * 5),
        )
    system_snapshot()
    counters.increment("ratelimit_fallback_total", group="prompts.resolve")
    recorder.flush()
    return now


def test_dashboard_renders_charts_and_tables_with_data(staff_client, data):
    for window in ("1h", "24h", "7d"):
        response = staff_client.get(reverse(DASHBOARD), {"window": window})
        assert response.status_code == 200
        html = response.content.decode()
        assert "rag.retrieve: latency (ms)" in html
        assert html.count("<svg") >= 5
        assert "<polyline" in html
        assert "support-bot" in html and "refund" in html
        assert "ratelimit_fallback_total" in html
        assert "<script" not in html.split('id="content"')[1]  # charts are plain SVG


def test_dashboard_is_staff_only(client, django_user_model):
    user = make_user(django_user_model, "not-staff", "monitoring.view_metrics")
    client.force_login(user)
    response = client.get(reverse(DASHBOARD))
    assert response.status_code == 302  # to the admin login


def test_dashboard_needs_the_view_permission(client, django_user_model):
    user = make_user(django_user_model, "bare-staff", is_staff=True)
    user.groups.clear()  # the default role's group (accounts) would grant the view permission
    client.force_login(user)
    assert client.get(reverse(DASHBOARD)).status_code == 403


def test_dashboard_escapes_operation_names(staff_client, store_name):
    recorder.observe("<script>alert(1)</script>", 5.0, at=time.time() - 120)
    recorder.flush()
    html = staff_client.get(reverse(DASHBOARD)).content.decode()
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)" in html


def _export(client, model: str, ids) -> list[list[str]]:
    url = reverse(f"admin:monitoring_{model}_changelist")
    response = client.post(url, {"action": "export_csv", "_selected_action": [str(i) for i in ids]})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_operations_export_as_csv_with_percentiles(staff_client, data):
    ids = list(OperationMinute.objects.values_list("id", flat=True))
    rows = _export(staff_client, "operationminute", ids)
    assert rows[0][:5] == ["operation", "minute", "count", "errors", "error_rate"]
    assert len(rows) == len(ids) + 1
    assert {row[0] for row in rows[1:]} == {"rag.retrieve"}
    assert float(rows[1][5]) == pytest.approx(50.0, rel=0.01)


def test_agent_run_export_neutralises_formula_cells(staff_client, data):
    run = AgentRun.objects.first()
    AgentRun.objects.filter(pk=run.pk).update(agent="=HYPERLINK(evil)")
    rows = _export(staff_client, "agentrun", [run.pk])
    assert rows[1][1] == "'=HYPERLINK(evil)"


def test_system_snapshots_export_as_csv(staff_client, data):
    rows = _export(staff_client, "systemsnapshot", SystemSnapshot.objects.values_list("id", flat=True))
    assert rows[0][0] == "taken_at" and len(rows) == 2


def test_dashboard_renders_without_any_data(staff_client):
    response = staff_client.get(reverse(DASHBOARD), {"window": "24h"})
    assert response.status_code == 200
    assert "No operations in this window." in response.content.decode()


@pytest.fixture
def filed_run(django_user_model):
    submitter = make_user(django_user_model, "filer-bot", "monitoring.push_metrics", role="agent")
    now = datetime.now(UTC)
    return AgentRun.objects.create(
        run_id="filed-1",
        agent="support-bot",
        workflow="refund",
        steps=1,
        retry_count=0,
        no_progress_count=0,
        tokens=1,
        outcome="success",
        started_at=now - timedelta(minutes=2),
        finished_at=now - timedelta(minutes=1),
        submitted_by=submitter,
    )


def test_the_submitter_of_a_run_is_shown_in_the_list_the_csv_and_the_dashboard(staff_client, filed_run):
    listing = staff_client.get(reverse("admin:monitoring_agentrun_changelist")).content.decode()
    assert "filer-bot" in listing
    rows = _export(staff_client, "agentrun", [filed_run.pk])
    assert rows[0][-1] == "submitted_by"
    assert rows[1][-1] == "filer-bot"
    dashboard = staff_client.get(reverse(DASHBOARD), {"window": "1h"}).content.decode()
    assert "<th>Submitted by</th>" in dashboard
    assert "<td>filer-bot</td>" in dashboard
    assert "support-bot/refund (by filer-bot)" in dashboard
