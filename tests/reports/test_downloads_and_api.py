"""Report downloads (CSV, JSON), the report page with charts, and the reports API."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from reports.models import JobOutcome, JobRun, Report, ReportKind

pytestmark = pytest.mark.django_db

START = datetime(2026, 11, 26, tzinfo=UTC)
DATA = {
    "period": {"start": START.isoformat(), "end": (START + timedelta(days=1)).isoformat()},
    "sections": {
        "audit": {
            "available": True,
            "events": 3,
            "by_action": [{"action": '=HYPERLINK("x")', "events": 2, "failed": 1}, {"action": "b", "events": 1}],
            "by_severity": {"info": 2, "error": 1},
        },
        "jobs": {"available": True, "runs": 2, "by_outcome": {"success": 1, "failed": 1}},
        "monitoring": {"available": False, "note": "monitoring is not installed"},
    },
}


@pytest.fixture
def report():
    return Report.objects.create(
        kind=ReportKind.DAILY, period="2026-11-26", period_start=START, period_end=START + timedelta(days=1), data=DATA
    )


def body_of(response) -> str:
    return b"".join(response.streaming_content).decode() if response.streaming else response.content.decode()


def test_csv_download_flattens_every_metric_and_neutralises_formulas(client, make_user, report):
    client.force_login(make_user("analyst"))
    response = client.get(reverse("admin:reports_report_csv", args=[report.pk]))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(body_of(response))))
    assert rows[0] == ["section", "metric", "value"]
    assert ["audit", "events", "3"] in rows
    assert ["audit", "by_action[0].action", '\'=HYPERLINK("x")'] in rows
    assert ["audit", "by_severity.error", "1"] in rows
    assert ["jobs", "by_outcome.failed", "1"] in rows
    assert ["monitoring", "note", "monitoring is not installed"] in rows


def test_json_download_is_the_report_document(client, make_user, report):
    client.force_login(make_user("analyst"))
    response = client.get(reverse("admin:reports_report_json", args=[report.pk]))
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    document = json.loads(body_of(response))
    assert (document["id"], document["kind"], document["period"]) == (report.pk, "daily", "2026-11-26")
    assert document["data"] == DATA


def test_downloads_require_the_export_permission(client, make_user, report):
    client.force_login(make_user("agent"))
    assert client.get(reverse("admin:reports_report_csv", args=[report.pk])).status_code == 403


def test_report_page_renders_escaped_svg_charts(client, make_user, report):
    client.force_login(make_user("analyst"))
    response = client.get(reverse("admin:reports_report_change", args=[report.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    charts = page.split('class="report-chart"')[1:]
    assert len(charts) == 3  # audit by action, by severity, jobs by outcome
    assert "Audit events by action" in page
    assert "=HYPERLINK(&quot;x&quot;)" in charts[0]
    assert "<script" not in "".join(charts)


def test_jobrun_csv_export_action_streams_the_selected_runs(client, make_user):
    run = JobRun.objects.create(
        job="audit_seal", period="2026-11-26T00:01", outcome=JobOutcome.FAILED, started_at=START, error_summary="@x"
    )
    client.force_login(make_user("analyst"))
    response = client.post(
        reverse("admin:reports_jobrun_changelist"), {"action": "export_csv", "_selected_action": [run.pk]}
    )
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(body_of(response))))
    assert rows[0][:3] == ["id", "job", "period"]
    assert rows[1][1:3] == ["audit_seal", "2026-11-26T00:01"]
    assert rows[1][11] == "'@x"


def test_jobrun_changelist_filters_by_outcome(client, make_user):
    JobRun.objects.create(job="audit_seal", period="a", outcome=JobOutcome.FAILED, started_at=START)
    JobRun.objects.create(job="metrics_prune", period="b", outcome=JobOutcome.SUCCESS, started_at=START)
    client.force_login(make_user("analyst"))
    response = client.get(reverse("admin:reports_jobrun_changelist"), {"outcome__exact": "failed"})
    assert response.status_code == 200
    assert response.context["cl"].result_count == 1


# --- API ------------------------------------------------------------------------------------


def test_api_lists_reports_filtered_by_kind_and_since(api_client, make_user, report):
    Report.objects.create(
        kind=ReportKind.DAILY,
        period="2026-11-20",
        period_start=START - timedelta(days=6),
        period_end=START - timedelta(days=5),
        data={},
    )
    Report.objects.create(
        kind=ReportKind.CREATOR_ANALYTICS,
        period="2026-W48",
        period_start=START - timedelta(days=3),
        period_end=START + timedelta(days=4),
        data={},
    )
    api_client.force_authenticate(make_user("analyst"))
    response = api_client.get("/api/v1/reports/", {"kind": "daily", "since": "2026-11-21"})
    assert response.status_code == 200
    assert response.json()["count"] == 1
    assert [r["period"] for r in response.json()["results"]] == ["2026-11-26"]
    assert "data" not in response.json()["results"][0]
    assert api_client.get("/api/v1/reports/").json()["count"] == 3


def test_api_detail_returns_the_data(api_client, make_user, report):
    api_client.force_authenticate(make_user("analyst"))
    response = api_client.get(f"/api/v1/reports/{report.pk}")
    assert response.status_code == 200
    assert response.json()["data"] == DATA


def test_api_rejects_an_unknown_kind_with_the_error_envelope(api_client, make_user):
    api_client.force_authenticate(make_user("analyst"))
    response = api_client.get("/api/v1/reports/", {"kind": "weekly"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"


def test_api_missing_report_is_404(api_client, make_user):
    api_client.force_authenticate(make_user("analyst"))
    assert api_client.get("/api/v1/reports/999999").json()["error"]["code"] == "not_found"


def test_api_refuses_agents(api_client, make_user, report):
    api_client.force_authenticate(make_user("agent"))
    assert api_client.get("/api/v1/reports/").status_code == 403
    assert api_client.get(f"/api/v1/reports/{report.pk}").status_code == 403


def test_api_views_declare_the_reports_rate_limit_group():
    from reports.api import ReportDetailView, ReportListView

    assert ReportListView.throttle_scope == ReportDetailView.throttle_scope == "reports.read"


def test_export_file_is_served_through_the_admin(client, make_user, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "audit-2026-10.csv").write_text("id,action\n1,user.created\n")
    report = Report.objects.create(
        kind=ReportKind.AUDIT_EXPORT,
        period="2026-10",
        period_start=datetime(2026, 10, 1, tzinfo=UTC),
        period_end=datetime(2026, 11, 1, tzinfo=UTC),
        data={},
        file="exports/audit-2026-10.csv",
    )
    client.force_login(make_user("analyst"))
    response = client.get(reverse("admin:reports_report_file", args=[report.pk]))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"id,action\n1,user.created\n"
    assert 'filename="audit-2026-10.csv"' in response["Content-Disposition"]
