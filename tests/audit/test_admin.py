"""The audit admin: read-only, bounded queries at scale, indexed search, status line, audited exports."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import Role
from audit import admin as audit_admin
from audit.integrity import audit_seal_pending, audit_verify_chain
from audit.models import AuditEvent
from audit.retention import audit_export_period

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/audit/auditevent/"


@pytest.fixture
def staff_client(client, make_user):
    def login(role=Role.ANALYST):
        user = make_user(role)
        client.force_login(user)
        return client, user

    return login


@pytest.fixture
def some_events(store_events):
    base = datetime(2025, 3, 10, 12, tzinfo=UTC)
    return store_events(
        {"actor": "alice", "action": "experiment.started", "occurred_at": base, "details": {"variant": "=B"}},
        {"actor": "bob", "action": "experiment.stopped", "occurred_at": base + timedelta(days=1)},
        {"actor": "carol", "action": "auth.login_failed", "occurred_at": base + timedelta(days=40), "success": False},
    )


def rows_of(response) -> list[dict]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


def test_a_page_refused_with_403_is_audited_as_a_durable_permission_denial(
    staff_client, some_events, monkeypatch, flush_denials
):
    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", True)  # the refused request rolls back
    client, user = staff_client(Role.ADMIN)
    assert client.post(f"{CHANGELIST}{some_events[0].pk}/delete/").status_code == 403
    flush_denials()  # the minute's tally, as its Celery task writes it
    (denial,) = AuditEvent.objects.filter(action="auth.permission_denied")
    assert (denial.actor_id, denial.resource_type, denial.success) == (user.pk, "page", False)
    assert denial.resource_id == f"{CHANGELIST}{some_events[0].pk}/delete/"
    assert denial.details["view"] == "admin:audit_auditevent_delete"


def test_a_refused_url_holding_a_nul_is_still_a_403_and_audited(staff_client, some_events, flush_denials):
    client, _ = staff_client(Role.ADMIN)
    assert client.post(f"{CHANGELIST}{some_events[0].pk}%00/delete/").status_code == 403
    flush_denials()
    (denial,) = AuditEvent.objects.filter(action="auth.permission_denied")
    assert "\\x00" in denial.resource_id


def test_the_changelist_shows_events_and_no_add_change_or_delete(staff_client, some_events):
    client, _ = staff_client(Role.ADMIN)
    response = client.get(CHANGELIST)
    assert response.status_code == 200
    assert b"experiment.started" in response.content
    assert b"/admin/audit/auditevent/add/" not in response.content
    detail = client.get(f"{CHANGELIST}{some_events[0].pk}/change/")
    assert detail.status_code == 200
    assert b'name="_save"' not in detail.content
    assert client.post(f"{CHANGELIST}{some_events[0].pk}/delete/").status_code == 403


def test_the_detail_view_shows_pretty_json(staff_client, some_events):
    client, _ = staff_client()
    detail = client.get(f"{CHANGELIST}{AuditEvent.objects.get(actor_label='alice').pk}/change/")
    assert b"<pre>{\n  &quot;variant&quot;: &quot;=B&quot;\n}</pre>" in detail.content


def test_agents_cannot_open_the_admin(staff_client, some_events):
    client, _ = staff_client(Role.AGENT)
    assert client.get(CHANGELIST).status_code == 302  # to the login page: agents are not staff


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("alice", {"alice"}),
        ("experiment.*", {"alice", "bob"}),
        ("auth.login_failed", {"carol"}),
        ("exp", set()),  # no substring scans
    ],
)
def test_search_matches_indexed_fields_exactly_or_by_prefix(staff_client, some_events, term, expected):
    client, _ = staff_client()
    response = client.get(CHANGELIST, {"q": term})
    assert set(response.context["cl"].result_list.values_list("actor_label", flat=True)) == expected


def test_search_by_event_id(staff_client, some_events):
    client, _ = staff_client()
    response = client.get(CHANGELIST, {"q": str(some_events[1].event_id)})
    assert list(response.context["cl"].result_list.values_list("actor_label", flat=True)) == ["bob"]


@pytest.mark.parametrize("query", [{}, {"_facets": "1"}, {"success__exact": "0", "_facets": "1"}])
def test_the_changelist_never_counts_the_whole_table_nor_scans_it_for_dates(staff_client, some_events, query):
    client, _ = staff_client()
    with CaptureQueriesContext(connection) as queries:
        assert client.get(CHANGELIST, query).status_code == 200
    audit_sql = [q["sql"] for q in queries.captured_queries if "audit_auditevent" in q["sql"]]
    for sql in audit_sql:
        if "COUNT(" in sql.upper():
            assert "LIMIT" in sql.upper(), sql  # every count is bounded (the paginator's, the status line's)
        assert "DISTINCT" not in sql.upper() or 'occurred_at" >=' in sql, sql


def test_the_status_line_stops_counting_unsealed_events_at_the_cap(staff_client, store_events, monkeypatch):
    monkeypatch.setattr(audit_admin, "COUNT_CAP", 2)
    store_events(*({"actor": "a", "action": "thing.happened"} for _ in range(3)))
    client, _ = staff_client()
    status = client.get(CHANGELIST).content.decode()
    assert "more than 2 awaiting sealing" in " ".join(status.split())


def test_the_date_hierarchy_offers_the_periods_that_have_events(staff_client, some_events):
    client, _ = staff_client()
    response = client.get(CHANGELIST, {"occurred_at__year": 2025})
    months = [choice["title"] for choice in _hierarchy(response)["choices"]]
    assert months == ["March 2025", "April 2025"]
    response = client.get(CHANGELIST, {"occurred_at__year": 2025, "occurred_at__month": 3})
    assert [c["title"] for c in _hierarchy(response)["choices"]] == ["March 10", "March 11"]


def _hierarchy(response):
    from django.contrib.admin.templatetags.admin_list import date_hierarchy

    return date_hierarchy(response.context["cl"])


def test_the_paginator_shows_an_estimate_past_the_cap(staff_client, store_events, monkeypatch):
    monkeypatch.setattr(audit_admin, "COUNT_CAP", 3)
    store_events(*({"action": "thing.happened"} for _ in range(5)))
    client, _ = staff_client()
    count = client.get(CHANGELIST).context["cl"].result_count
    # SQLite shows the capped count; PostgreSQL its planner's estimate, at least the cap.
    assert count >= 4


def test_the_status_line_shows_the_last_sealing_and_verification(staff_client, some_events):
    client, _ = staff_client()  # logging in may itself be audited: seal after it
    sealed = audit_seal_pending(now=datetime.now(UTC) + timedelta(minutes=1))
    audit_verify_chain()
    content = client.get(CHANGELIST).content.decode()
    status = re.search(r'<p class="help" id="audit-status">(.*?)</p>', content, re.S).group(1)
    assert f"{sealed} events, head #{sealed}" in status
    assert "passed" in status
    assert "0 awaiting sealing" in status


def test_the_status_line_says_never_before_any_sealing(staff_client):
    client, _ = staff_client()
    assert "Last sealing:\n    never" in client.get(CHANGELIST).content.decode()


def test_exporting_selected_rows_streams_neutralised_csv_and_is_audited(staff_client, some_events):
    client, user = staff_client()
    ids = [some_events[0].pk, some_events[1].pk]
    response = client.post(CHANGELIST, {"action": "export_csv", "_selected_action": ids})
    assert response.streaming
    rows = rows_of(response)
    assert sorted(row["actor_label"] for row in rows) == ["alice", "bob"]
    assert next(row for row in rows if row["actor_label"] == "alice")["details"] == '{"variant":"=B"}'
    audit = AuditEvent.objects.get(action="audit.exported")
    assert (audit.actor_id, audit.details["scope"]) == (user.pk, "selected")


def test_exporting_the_filtered_list_streams_exactly_the_filtered_rows_and_is_audited(staff_client, some_events):
    client, _user = staff_client()
    response = client.get(reverse("admin:audit_auditevent_export"), {"q": "experiment.*"})
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert sorted(row["actor_label"] for row in rows_of(response)) == ["alice", "bob"]
    audit = AuditEvent.objects.get(action="audit.exported")
    assert audit.details == {"scope": "filtered", "filters": {"q": "experiment.*"}}


def test_a_formula_cell_in_an_export_is_neutralised(staff_client, store_events):
    store_events({"actor": "=cmd|'/C calc'!A0", "action": "thing.happened"})
    client, _ = staff_client()
    rows = rows_of(client.get(reverse("admin:audit_auditevent_export"), {"q": "thing.happened"}))
    assert [row["actor_label"] for row in rows] == ["'=cmd|'/C calc'!A0"]


def test_exporting_needs_the_export_permission(some_events, django_user_model, client):
    from django.contrib.auth.models import Permission

    # Staff who may read the log but hold no export permission (no role carries that combination).
    user = django_user_model.objects.create_user(username="reader", role=Role.AGENT, is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_auditevent"))
    client.force_login(user)
    assert client.get(CHANGELIST).status_code == 200
    assert client.get(reverse("admin:audit_auditevent_export")).status_code == 403


def test_export_files_are_listed_and_downloadable_and_downloads_are_audited(staff_client, some_events):
    export = audit_export_period(start=datetime(2025, 3, 1, tzinfo=UTC), end=datetime(2025, 4, 1, tzinfo=UTC))
    client, user = staff_client()
    listing = client.get("/admin/audit/auditexport/").content.decode()
    url = reverse("admin:audit_auditexport_download", args=[export.pk])
    assert url in listing
    response = client.get(url)
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode()
    assert body.count("\n") == 3  # header and the two March events
    assert AuditEvent.objects.filter(action="audit.export_downloaded", actor_id=user.pk).exists()
