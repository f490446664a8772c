"""The audit API: batch writes, filters, pagination, statistics and who may read what."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from datetime import timezone as dt_timezone
from unittest.mock import ANY

import pytest
from django.utils import timezone

from accounts.models import Role
from audit.models import AuditEvent, Severity

pytestmark = pytest.mark.django_db
EVENTS = "/api/v1/audit/events"
STATS = "/api/v1/audit/stats"
DAY = datetime(2026, 11, 20, tzinfo=UTC)


def post(client, events):
    return client.post(EVENTS, {"events": events}, format="json")


# --- writing -----------------------------------------------------------------------------------


def test_an_agent_writes_a_batch_and_is_recorded_as_the_actor(client_for):
    client, agent = client_for(Role.AGENT, username="agent-7")
    response = post(client, [{"action": "tool.called", "resource_type": "tool", "resource_id": 3}, {"action": "x.y"}])
    assert response.status_code == 200
    assert response.json() == {"accepted": 2, "duplicates": 0, "rejected": []}
    assert set(AuditEvent.objects.values_list("actor_id", "actor_label")) == {(agent.pk, "agent-7")}


def test_the_actor_cannot_be_set_in_the_body(client_for):
    client, agent = client_for(Role.AGENT)
    response = post(client, [{"action": "tool.called", "actor": "admin"}, {"action": "tool.called"}])
    assert response.status_code == 200
    assert response.json()["rejected"] == [
        {
            "index": 0,
            "errors": {
                "actor": [
                    {"code": "unknown_field", "message": "The actor is the authenticated caller; it cannot be set."}
                ]
            },
        }
    ]
    assert list(AuditEvent.objects.values_list("actor_label", flat=True)) == [agent.username]


def test_refused_rows_carry_a_code_for_missing_and_unknown_fields(client_for):
    client, _ = client_for(Role.AGENT)
    response = post(client, [{"resource_type": "tool"}, {"action": "tool.called", "colour": "red"}])
    assert response.status_code == 200
    assert [(r["index"], r["errors"]) for r in response.json()["rejected"]] == [
        (0, {"action": [{"code": "required", "message": ANY}]}),
        (1, {"colour": [{"code": "unknown_field", "message": "Unknown field."}]}),
    ]
    assert response.json()["accepted"] == 0


def test_a_repeated_event_id_is_stored_once_and_reported_as_a_duplicate(client_for):
    client, _ = client_for(Role.AGENT)
    event_id = str(uuid.uuid4())
    first = post(client, [{"action": "tool.called", "event_id": event_id}])
    again = post(
        client, [{"action": "tool.called", "event_id": event_id}, {"action": "tool.called", "event_id": event_id}]
    )
    assert first.json()["accepted"] == 1
    assert again.status_code == 200
    assert again.json() == {"accepted": 0, "duplicates": 2, "rejected": []}
    assert AuditEvent.objects.filter(event_id=event_id).count() == 1


def test_invalid_rows_are_reported_by_index_and_the_valid_rows_stored(client_for):
    client, _ = client_for(Role.AGENT)
    future = (timezone.now() + timedelta(hours=1)).isoformat()
    response = post(
        client,
        [
            {"action": "tool.called"},
            {"action": "Not An Action"},
            {"action": "tool.called", "severity": "fatal", "event_id": "nope"},
            {"action": "tool.called", "occurred_at": future},
            "not an object",
            {"action": "tool.called", "details": {"token": "secret-value"}, "severity": "warning"},
        ],
    )
    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] == 2
    assert [rejection["index"] for rejection in body["rejected"]] == [1, 2, 3, 4]
    assert set(body["rejected"][1]["errors"]) == {"severity", "event_id"}
    assert [
        (r["index"], {name: [e["code"] for e in errors] for name, errors in r["errors"].items()})
        for r in body["rejected"]
    ] == [
        (1, {"action": ["invalid"]}),
        (2, {"event_id": ["invalid"], "severity": ["invalid"]}),
        (3, {"occurred_at": ["out_of_range"]}),
        (4, {"non_field_errors": ["invalid"]}),
    ]
    assert body["rejected"][2]["errors"]["occurred_at"][0]["message"] == "Must not be in the future."
    assert AuditEvent.objects.get(severity=Severity.WARNING).details == {"token": "***"}


@pytest.mark.parametrize("count", [0, 1001])
def test_a_batch_must_hold_1_to_1000_events(client_for, count):
    client, _ = client_for(Role.AGENT)
    response = post(client, [{"action": "tool.called"}] * count)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert AuditEvent.objects.count() == 0


def test_a_batch_of_1000_is_accepted(client_for):
    client, _ = client_for(Role.AGENT)
    response = post(client, [{"action": "tool.called"}] * 1000)
    assert response.json() == {"accepted": 1000, "duplicates": 0, "rejected": []}


@pytest.fixture
def direct_copies(monkeypatch):
    """Each optimistic COPY straight into the table, as (rows, stored whole)."""
    from audit import writer as writer_module

    calls = []
    real_copy_direct = writer_module._copy_direct

    def spy(connection_, batch, **options):
        stored = real_copy_direct(connection_, batch, **options)
        # The API answers only once its rows are durable: never an asynchronous commit.
        assert options["synchronous"] is True
        calls.append((len(batch), stored))
        return stored

    monkeypatch.setattr(writer_module, "_copy_direct", spy)
    return calls


# Outside a test transaction, as in production: the optimistic COPY only runs outside one.
@pytest.mark.django_db(transaction=True)
def test_a_fresh_batch_is_copied_straight_into_the_table(client_for, direct_copies):
    client, agent = client_for(Role.AGENT, username="agent-copy")
    rows = [{"action": "tool.called", "resource_id": i, "details": {"path": "c:\\temp"}} for i in range(50)]
    chosen = str(uuid.uuid4())
    rows[7]["event_id"] = chosen
    awkward = "tab\there, line\nbreak, cr\rhere, back\\slash, \\N"  # COPY's text format gives these a meaning
    rows[3]["resource_id"] = awkward
    response = post(client, rows)
    assert response.status_code == 200
    assert response.json() == {"accepted": 50, "duplicates": 0, "rejected": []}
    assert direct_copies == [(50, True)]
    assert AuditEvent.objects.filter(actor_id=agent.pk).count() == 50
    assert AuditEvent.objects.get(event_id=chosen).resource_id == "7"
    assert AuditEvent.objects.get(resource_id=awkward).details == {"path": "c:\\temp"}


@pytest.mark.django_db(transaction=True)
def test_an_offset_with_seconds_is_stored_as_its_instant(client_for, direct_copies):
    # Python reads "+01:00:30.5"; PostgreSQL's text input does not: the event is stored in UTC.
    moment = timezone.now().replace(microsecond=0) - timedelta(hours=1)
    odd_zone = dt_timezone(timedelta(hours=1, seconds=30, microseconds=500_000))
    client, _ = client_for(Role.AGENT)
    stamp = moment.astimezone(odd_zone).isoformat()
    assert stamp.endswith("+01:00:30.500000")
    response = post(client, [{"action": "tool.called", "resource_id": i, "occurred_at": stamp} for i in range(30)])
    assert response.status_code == 200, response.content
    assert response.json()["accepted"] == 30, response.json()
    assert direct_copies == [(30, True)]
    assert set(AuditEvent.objects.values_list("occurred_at", flat=True)) == {moment}


def test_a_row_holding_an_unpaired_surrogate_is_refused_with_the_error_envelope(client_for):
    client, _ = client_for(Role.AGENT)
    body = rb'{"events": [{"action": "tool.called"}, {"action": "tool.called", "resource_id": "\ud800"}]}'
    response = client.post(EVENTS, data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_request"
    assert "unpaired surrogate" in response.json()["error"]["message"]
    assert AuditEvent.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_retried_batch_falls_back_to_on_conflict_and_reports_its_duplicates(client_for, direct_copies, caplog):
    from agentplatform import counters

    client, _ = client_for(Role.AGENT)
    rows = [{"action": "tool.called", "event_id": str(uuid.uuid4()), "resource_id": i} for i in range(30)]
    assert post(client, rows[:25]).json()["accepted"] == 25  # the first attempt stored only part of the batch
    skipped_before = counters.value("audit_duplicate_ids_skipped")
    again = post(client, rows)
    assert again.status_code == 200
    assert again.json() == {"accepted": 5, "duplicates": 25, "rejected": []}
    assert direct_copies == [(25, True), (30, False)]  # the retry's COPY was refused whole, then ON CONFLICT
    assert AuditEvent.objects.count() == 30
    # Reported to the caller, who expects them: not the writer's "skipped" warning.
    assert counters.value("audit_duplicate_ids_skipped") == skipped_before
    assert "not written" not in caplog.text


def test_analysts_cannot_write_events(client_for):
    client, _ = client_for(Role.ANALYST)
    assert post(client, [{"action": "tool.called"}]).status_code == 403


def test_anonymous_callers_can_neither_write_nor_read(api_client):
    assert post(api_client, [{"action": "tool.called"}]).status_code in (401, 403)
    assert api_client.get(EVENTS).status_code in (401, 403)
    assert api_client.get(STATS).status_code in (401, 403)


# --- reading -----------------------------------------------------------------------------------


@pytest.fixture
def history(store_events):
    """A small log over two days: three actors, several actions and severities."""
    specs = [
        ("alice", "experiment.started", "info", True, DAY + timedelta(hours=1), "experiment", "e1"),
        ("alice", "experiment.paused", "warning", True, DAY + timedelta(hours=2), "experiment", "e1"),
        ("alice", "experiments_other.x", "info", True, DAY + timedelta(hours=3), "experiment", "e2"),
        ("bob", "experiment.started", "error", False, DAY + timedelta(hours=4), "experiment", "e2"),
        ("bob", "auth.login_failed", "warning", False, DAY + timedelta(hours=5), "user", "bob"),
        ("carol", "auth.login_failed", "critical", False, DAY + timedelta(days=1, hours=1), "user", "carol"),
        ("carol", "prompt.resolved", "debug", True, DAY + timedelta(days=1, hours=2), "prompt", "p1"),
    ]
    return store_events(
        *(
            {
                "actor": label,
                "action": action,
                "severity": severity,
                "success": success,
                "occurred_at": at,
                "resource_type": rtype,
                "resource_id": rid,
            }
            for label, action, severity, success, at, rtype, rid in specs
        )
    )


def listed(client, **params):
    response = client.get(EVENTS, params)
    assert response.status_code == 200, response.content
    return [(e["actor"], e["action"]) for e in response.json()["results"]]


def test_events_are_listed_newest_first(client_for, history):
    client, _ = client_for(Role.ANALYST)
    assert listed(client)[:2] == [("carol", "prompt.resolved"), ("carol", "auth.login_failed")]
    assert len(listed(client)) == 7


def test_filter_by_actor(client_for, history):
    client, _ = client_for(Role.ANALYST)
    assert {a for a, _ in listed(client, actor="bob")} == {"bob"}
    assert len(listed(client, actor="bob")) == 2


def test_filter_by_exact_action(client_for, history):
    client, _ = client_for(Role.ANALYST)
    assert listed(client, action="experiment.started") == [
        ("bob", "experiment.started"),
        ("alice", "experiment.started"),
    ]


def test_filter_by_action_prefix_matches_whole_segments_only(client_for, history):
    client, _ = client_for(Role.ANALYST)
    actions = [action for _, action in listed(client, action="experiment.*")]
    assert sorted(actions) == ["experiment.paused", "experiment.started", "experiment.started"]


def test_filter_by_minimum_severity(client_for, history):
    client, _ = client_for(Role.ANALYST)
    assert sorted(listed(client, severity="error")) == [("bob", "experiment.started"), ("carol", "auth.login_failed")]


def test_filter_by_success(client_for, history):
    client, _ = client_for(Role.ANALYST)
    assert len(listed(client, success="false")) == 3
    assert len(listed(client, success="true")) == 4


def test_filter_by_resource(client_for, history):
    client, _ = client_for(Role.ANALYST)
    assert sorted(listed(client, resource_type="experiment", resource_id="e2")) == [
        ("alice", "experiments_other.x"),
        ("bob", "experiment.started"),
    ]


def test_filter_by_time_window_is_inclusive_then_exclusive(client_for, history):
    client, _ = client_for(Role.ANALYST)
    since, until = DAY + timedelta(hours=2), DAY + timedelta(hours=4)
    assert listed(client, since=since.isoformat(), until=until.isoformat()) == [
        ("alice", "experiments_other.x"),
        ("alice", "experiment.paused"),
    ]


def test_filters_combine(client_for, history):
    client, _ = client_for(Role.ANALYST)
    rows = listed(
        client, actor="alice", action="experiment.*", since=DAY.isoformat(), until=(DAY + timedelta(days=1)).isoformat()
    )
    assert rows == [("alice", "experiment.paused"), ("alice", "experiment.started")]


def test_malformed_filters_are_refused(client_for):
    client, _ = client_for(Role.ANALYST)
    assert client.get(EVENTS, {"severity": "fatal"}).status_code == 400
    assert client.get(EVENTS, {"action": "exp%"}).status_code == 400
    assert client.get(EVENTS, {"cursor": "garbage!"}).status_code == 400


def _all_pages(client, page_size, between_pages=None):
    seen, cursor, pages = [], None, 0
    while True:
        params = {"page_size": page_size, **({"cursor": cursor} if cursor else {})}
        body = client.get(EVENTS, params).json()
        seen.extend(e["event_id"] for e in body["results"])
        pages += 1
        cursor = body["next_cursor"]
        if not cursor:
            return seen, pages
        if between_pages:
            between_pages(pages)


def test_pagination_walks_every_event_once(client_for, store_events):
    client, _ = client_for(Role.ANALYST)
    events = store_events(
        *({"action": "tool.called", "occurred_at": DAY + timedelta(minutes=i % 7)} for i in range(23))
    )
    seen, pages = _all_pages(client, 5)
    assert pages == 5
    assert sorted(seen) == sorted(str(e.event_id) for e in events)


def test_pagination_is_stable_while_new_events_arrive(client_for, store_events):
    client, _ = client_for(Role.ANALYST)
    # Several events share a timestamp: the id breaks the tie, so none is skipped or repeated.
    events = store_events(
        *({"action": "tool.called", "occurred_at": DAY + timedelta(minutes=i // 3)} for i in range(20))
    )

    def concurrent_inserts(page):
        store_events(
            {"action": "tool.called"},  # now: above every page
            {"action": "tool.called", "occurred_at": DAY + timedelta(minutes=2)},  # a timestamp already seen
            {"action": "tool.called", "occurred_at": DAY - timedelta(days=1)},  # older than everything
        )

    seen, _ = _all_pages(client, 4, between_pages=concurrent_inserts)
    assert len(seen) == len(set(seen))
    assert {str(e.event_id) for e in events} <= set(seen)


@pytest.mark.django_db(transaction=True)
def test_pagination_is_stable_while_another_connection_commits_events(client_for, store_events, settings):
    """Real concurrency: a second thread (its own connection) commits events, some with timestamps
    the pages have already passed, while the first walks the pages."""
    import threading

    # The walk is as long as the writer is fast: not a test of the 300/min read limit it could reach.
    settings.RATELIMIT_ENABLE = False

    from django.db import connection as thread_connection

    client, _ = client_for(Role.ANALYST)
    before = store_events(
        *({"action": "tool.called", "occurred_at": DAY + timedelta(seconds=i // 4)} for i in range(60))
    )
    stop, inserted, failures = threading.Event(), [], []

    def writer():
        try:
            n = 0
            while not stop.is_set() and n < 200:  # bounded: the walk must reach its end
                batch = store_events(
                    {"action": "tool.called"},
                    {"action": "tool.called", "occurred_at": DAY + timedelta(seconds=n % 15)},
                    {"action": "tool.called", "occurred_at": DAY - timedelta(seconds=n)},
                )
                inserted.extend(batch)
                n += 1
        except Exception as exc:  # reported below: a failing thread must fail the test
            failures.append(exc)
        finally:
            thread_connection.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        seen, _ = _all_pages(client, 7, between_pages=lambda page: time.sleep(0.01))
    finally:
        stop.set()
        thread.join(30)
    assert not failures
    assert len(inserted) >= 3  # the writer really ran during the walk
    assert len(seen) == len(set(seen))  # nothing repeated
    assert {str(e.event_id) for e in before} <= set(seen)  # nothing present at the start skipped


def test_page_size_is_capped(client_for, store_events, settings):
    settings.AUDIT_MAX_PAGE_SIZE = 3
    client, _ = client_for(Role.ANALYST)
    store_events(*({"action": "tool.called"} for _ in range(5)))
    body = client.get(EVENTS, {"page_size": 1000}).json()
    assert len(body["results"]) == 3
    assert body["next_cursor"]


def test_an_event_carries_its_fields(client_for, store_events):
    client, _ = client_for(Role.ANALYST)
    store_events({"action": "tool.called", "severity": "error", "success": False, "details": {"a": 1}})
    event = client.get(EVENTS).json()["results"][0]
    assert (event["action"], event["severity"], event["success"], event["details"], event["sealed"]) == (
        "tool.called",
        "error",
        False,
        {"a": 1},
        False,
    )


# --- who may read ------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.ANALYST, Role.OPERATOR, Role.ADMIN])
def test_people_who_read_see_every_event(client_for, history, role):
    client, _ = client_for(role)
    assert len(listed(client)) == 7


def test_agents_read_only_their_own_events(client_for, history):
    client, agent = client_for(Role.AGENT)
    post(client, [{"action": "tool.called"}])
    assert listed(client) == [(agent.username, "tool.called")]
    assert listed(client, actor="alice") == []
    assert client.get(STATS).json()["total"] == 1


# --- statistics --------------------------------------------------------------------------------


def test_stats_match_hand_computed_counts(client_for, history):
    client, _ = client_for(Role.ANALYST)
    body = client.get(STATS, {"since": DAY.isoformat(), "until": (DAY + timedelta(days=1)).isoformat()}).json()
    # The first day holds the first five events of the fixture.
    assert (body["total"], body["succeeded"], body["failed"]) == (5, 3, 2)
    assert body["success_rate"] == pytest.approx(0.6)
    assert body["by_severity"] == {"debug": 0, "info": 2, "warning": 2, "error": 1, "critical": 0}
    assert body["by_action"] == [
        {"value": "experiment.started", "count": 2},
        {"value": "auth.login_failed", "count": 1},
        {"value": "experiment.paused", "count": 1},
        {"value": "experiments_other.x", "count": 1},
    ]
    assert body["by_actor"] == [{"value": "alice", "count": 3}, {"value": "bob", "count": 2}]


def test_stats_of_an_empty_period_have_no_success_rate(client_for):
    client, _ = client_for(Role.ANALYST)
    body = client.get(STATS).json()
    assert (body["total"], body["success_rate"]) == (0, None)


def test_stats_refuse_a_period_that_ends_before_it_starts(client_for):
    client, _ = client_for(Role.ANALYST)
    response = client.get(STATS, {"since": (DAY + timedelta(days=1)).isoformat(), "until": DAY.isoformat()})
    assert response.status_code == 400


def test_stats_fold_the_tail_of_long_lists_into_other(client_for, store_events, monkeypatch):
    from audit import selectors

    monkeypatch.setattr(selectors, "STATS_TOP", 2)
    client, _ = client_for(Role.ANALYST)
    store_events(*({"action": f"thing{i % 4}.done"} for i in range(10)))
    by_action = client.get(STATS).json()["by_action"]
    assert by_action == [
        {"value": "thing0.done", "count": 3},
        {"value": "thing1.done", "count": 3},
        {"value": "(other)", "count": 4},
    ]


def test_writes_and_reads_count_against_their_own_rate_groups(client_for, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "audit.write": "1/m", "audit.read": "1000/m"}
    client, _ = client_for(Role.AGENT)
    assert post(client, [{"action": "tool.called"}]).status_code == 200
    assert post(client, [{"action": "tool.called"}]).status_code == 429
    assert client.get(EVENTS).status_code == 200  # reading has its own budget
