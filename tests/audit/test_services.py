"""audit_log: buffering, transaction semantics, durability, idempotency and what an event holds."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import numpy
import pytest
from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction
from django.http import HttpResponse
from django.test import RequestFactory

from agentplatform.errors import ValidationFailed
from agentplatform.request_id import reset_request_id, set_request_id
from audit import writer
from audit.middleware import AuditBufferMiddleware
from audit.models import AppendOnlyViolation, AuditEvent, Severity
from audit.services import MASK, audit_log
from audit.writer import AuditWriteFailed, DurableWriteUnavailable, audit_buffer

pytestmark = pytest.mark.django_db
POSTGRES = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


def actions() -> list[str]:
    return list(AuditEvent.objects.order_by("id").values_list("action", flat=True))


def test_audit_log_outside_any_scope_or_transaction_writes_at_once():
    audit_log(actor=None, action="thing.happened")
    assert actions() == ["thing.happened"]


def test_audit_buffer_holds_events_until_the_block_ends_then_inserts_them_in_one_statement(
    django_assert_num_queries,
):
    with audit_buffer():
        with django_assert_num_queries(0):
            for i in range(5):
                audit_log(actor=None, action="thing.happened", resource_id=i)
        assert actions() == []
    assert len(actions()) == 5


def test_buffered_flush_is_a_single_insert(django_assert_max_num_queries):
    # savepoint, SET LOCAL synchronous_commit (PostgreSQL), INSERT ... RETURNING, release
    with django_assert_max_num_queries(4), audit_buffer():
        for _ in range(50):
            audit_log(actor=None, action="thing.happened")
    assert AuditEvent.objects.count() == 50


def test_events_of_a_committed_transaction_are_written_on_commit(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        audit_log(actor=None, action="thing.committed")
        assert actions() == []
    assert actions() == ["thing.committed"]


def test_events_of_a_rolled_back_transaction_are_dropped(django_capture_on_commit_callbacks):
    with (
        django_capture_on_commit_callbacks(execute=True),
        audit_buffer(),
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        audit_log(actor=None, action="thing.undone")
        raise RuntimeError
    assert actions() == []


def test_durable_events_survive_the_rollback_of_their_transaction(django_capture_on_commit_callbacks):
    with (
        django_capture_on_commit_callbacks(execute=True),
        audit_buffer(),
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        audit_log(actor=None, action="auth.login_failed", durable=True, success=False)
        audit_log(actor=None, action="thing.undone")
        raise RuntimeError
    assert actions() == ["auth.login_failed"]


def test_durable_events_of_a_committed_transaction_are_written_once(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), audit_buffer(), transaction.atomic():
        audit_log(actor=None, action="permission.denied", durable=True)
    assert actions() == ["permission.denied"]


def test_a_rolled_back_savepoint_drops_only_its_own_events(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), audit_buffer(), transaction.atomic():
        audit_log(actor=None, action="outer.kept")
        with pytest.raises(RuntimeError), transaction.atomic():
            audit_log(actor=None, action="inner.dropped")
            raise RuntimeError
    assert actions() == ["outer.kept"]


def test_the_request_middleware_keeps_durable_events_of_a_failed_request_and_drops_the_rest():
    def view(request):
        try:
            with transaction.atomic():
                audit_log(actor=None, action="auth.login_failed", durable=True, request=request)
                audit_log(actor=None, action="thing.undone", request=request)
                raise RuntimeError
        except RuntimeError:
            pass
        return HttpResponse(status=401)

    request = RequestFactory().post("/x", REMOTE_ADDR="10.1.2.3", HTTP_USER_AGENT="pytest-agent")
    response = AuditBufferMiddleware(view)(request)
    assert response.status_code == 401
    event = AuditEvent.objects.get()
    assert (event.action, event.ip, event.user_agent) == ("auth.login_failed", "10.1.2.3", "pytest-agent")


def test_durable_events_are_written_even_when_the_requests_other_events_cannot_be(monkeypatch):
    def view(request):
        audit_log(actor=None, action="thing.done", request=request)
        with transaction.atomic():
            audit_log(actor=None, action="auth.permission_denied", durable=True, request=request)
        return HttpResponse(status=403)

    real_insert = writer.insert_events

    def refuse_the_committed_ones(events, **options):
        if any(e.action == "thing.done" for e in events):
            raise AuditWriteFailed()
        return real_insert(events, **options)

    monkeypatch.setattr(writer, "insert_events", refuse_the_committed_ones)
    with pytest.raises(AuditWriteFailed):  # the failure is not swallowed...
        AuditBufferMiddleware(view)(RequestFactory().post("/x"))
    assert actions() == ["auth.permission_denied"]  # ...and the denial was still stored


def test_a_durable_event_outside_a_transaction_is_stored_at_once_not_at_the_end_of_the_scope():
    with audit_buffer():
        audit_log(actor=None, action="thing.buffered")
        audit_log(actor=None, action="auth.login_failed", durable=True)
        assert actions() == ["auth.login_failed"]
    assert actions() == ["auth.login_failed", "thing.buffered"]


@pytest.mark.skipif(not POSTGRES, reason="a second writing connection needs PostgreSQL (SQLite has one writer)")
@pytest.mark.django_db(transaction=True, databases=["default", "audit_durable"])
def test_durable_event_outside_a_scope_is_written_on_a_second_connection_and_survives_rollback():
    with pytest.raises(RuntimeError), transaction.atomic():
        audit_log(actor=None, action="auth.login_failed", durable=True)
        audit_log(actor=None, action="thing.undone")
        raise RuntimeError
    assert actions() == ["auth.login_failed"]


@pytest.mark.skipif(POSTGRES, reason="SQLite only: no second writer connection exists")
def test_durable_event_outside_a_scope_inside_a_transaction_raises_on_sqlite():
    with pytest.raises(DurableWriteUnavailable), transaction.atomic():
        audit_log(actor=None, action="auth.login_failed", durable=True)


def test_a_repeated_event_id_is_stored_once():
    event_id = uuid.uuid4()
    audit_log(actor=None, action="thing.happened", event_id=str(event_id))
    audit_log(actor=None, action="thing.happened", event_id=str(event_id))
    assert AuditEvent.objects.filter(event_id=event_id).count() == 1


def test_a_failing_insert_is_retried_then_succeeds(monkeypatch):
    real_insert = writer._insert
    failures = iter([OperationalError("connection lost"), OperationalError("connection lost")])

    def flaky(events, using, **options):
        error = next(failures, None)
        if error:
            raise error
        return real_insert(events, using, **options)

    monkeypatch.setattr(writer, "_insert", flaky)
    stored = writer.insert_events([_event()])
    assert len(stored) == 1


def test_a_failing_insert_is_raised_after_its_retries_never_swallowed(monkeypatch):
    calls = []

    def broken(events, using, **options):
        calls.append(1)
        raise OperationalError("database is down")

    monkeypatch.setattr(writer, "_insert", broken)
    with pytest.raises(AuditWriteFailed):
        writer.insert_events([_event()])
    assert len(calls) == settings.AUDIT_WRITE_RETRIES + 1


def test_a_failing_flush_at_the_end_of_a_scope_raises(monkeypatch):
    def broken(events, using, **options):
        raise OperationalError("database is down")

    monkeypatch.setattr(writer, "_insert", broken)
    with pytest.raises(AuditWriteFailed), audit_buffer():
        audit_log(actor=None, action="thing.happened")


def test_secrets_are_masked_by_key_name_at_any_depth():
    audit_log(
        actor=None,
        action="thing.happened",
        details={
            "password": "hunter2",
            "X-Api-Key": "k",
            "nested": {"refresh_token": "t", "Authorization": "Bearer x", "client_secret": "s", "ok": 1},
            "list": [{"db_password": "p"}],
            "note": "fine",
        },
    )
    details = AuditEvent.objects.get().details
    assert details == {
        "password": MASK,
        "X-Api-Key": MASK,
        "nested": {"refresh_token": MASK, "Authorization": MASK, "client_secret": MASK, "ok": 1},
        "list": [{"db_password": MASK}],
        "note": "fine",
    }


def test_details_are_stored_as_the_json_text_they_were_encoded_to():
    details = {
        "unicode": "é✓ 日本",
        "quote": 'say "hi" \\ back',
        "control": "line\nbreak\ttab\x01",
        "numbers": [0, -1, 2**70, 1.5, True, None],
        "tuple": (1, "two"),
        7: "an int key",
        "nested": {"deeper": {"list": [{"k": "v"}]}},
    }
    audit_log(actor=None, action="thing.happened", details=details)
    stored = AuditEvent.objects.get().details
    assert stored == json.loads(json.dumps(details))  # keys as strings, the tuple as a list
    assert stored["numbers"][2] == 2**70


def test_values_json_cannot_hold_are_stored_as_strings_not_refused():
    moment = datetime(2026, 11, 27, 12, 30, tzinfo=UTC)
    audit_log(
        actor=None,
        action="thing.happened",
        details={
            "at": moment,
            "amount": Decimal("12.50"),
            "id": uuid.UUID(int=5),
            "latency_ms": float("nan"),
            "bounds": [float("inf"), float("-inf"), 2.5],
            "numpy": [numpy.float64("nan"), numpy.float64("-inf"), numpy.float64(0.5)],  # float subclasses
        },
    )
    assert AuditEvent.objects.get().details == {
        "at": "2026-11-27T12:30:00Z",
        "amount": "12.50",
        "id": "00000000-0000-0000-0000-000000000005",
        "latency_ms": "NaN",
        "bounds": ["Infinity", "-Infinity", 2.5],
        "numpy": ["NaN", "-Infinity", 0.5],
    }


def test_details_nested_past_the_depth_limit_are_cut_at_the_same_depth_for_every_kind_of_value():
    def nest(levels: int, leaf):
        value = leaf
        for _ in range(levels):
            value = {"down": value}
        return value

    # The details are depth 0: the leaf dict sits at the deepest depth kept (8), its values one past it.
    audit_log(actor=None, action="thing.happened", details=nest(8, {"scalar": 1, "list": [1], "dict": {}}))
    stored = AuditEvent.objects.get().details
    for _ in range(8):
        stored = stored["down"]
    assert stored == {"scalar": "[nested too deep]", "list": "[nested too deep]", "dict": "[nested too deep]"}


def test_an_object_with_no_json_form_is_refused_with_a_type_error():
    with pytest.raises(TypeError, match="not JSON serializable"):
        audit_log(actor=None, action="thing.happened", details={"object": object()})
    assert AuditEvent.objects.count() == 0


def test_the_details_size_cap_follows_a_changed_setting(settings):
    audit_log(actor=None, action="thing.happened", details={"blob": "x" * 2000})
    assert AuditEvent.objects.get().details == {"blob": "x" * 2000}
    settings.AUDIT_DETAILS_MAX_BYTES = 1024
    audit_log(actor=None, action="thing.capped", details={"blob": "x" * 2000})
    assert AuditEvent.objects.get(action="thing.capped").details["_truncated"] is True


def test_details_over_the_size_cap_are_replaced_by_a_truncated_preview(settings):
    settings.AUDIT_DETAILS_MAX_BYTES = 1024
    audit_log(actor=None, action="thing.happened", details={"blob": "x" * 5000})
    details = AuditEvent.objects.get().details
    assert details["_truncated"] is True
    assert details["_original_bytes"] > 5000
    assert len(details["_preview"]) <= 512


def test_actor_label_is_the_username_or_the_system_job(make_user):
    user = make_user("operator", username="olivia")
    audit_log(actor=user, action="experiment.started")
    audit_log(actor="system:audit_seal", action="audit.sealed")
    audit_log(actor=None, action="thing.happened")
    rows = list(AuditEvent.objects.order_by("id").values_list("actor_id", "actor_label"))
    assert rows == [(user.pk, "olivia"), (None, "system:audit_seal"), (None, "system")]


def test_request_id_ip_and_user_agent_come_from_the_request():
    request = RequestFactory().get("/", REMOTE_ADDR="192.0.2.7", HTTP_USER_AGENT="agent/1.0")
    token = set_request_id("req-123")
    try:
        audit_log(actor=None, action="thing.happened", request=request)
    finally:
        reset_request_id(token)
    event = AuditEvent.objects.get()
    assert (event.request_id, event.ip, event.user_agent) == ("req-123", "192.0.2.7", "agent/1.0")


def test_severity_is_stored_as_a_comparable_number():
    audit_log(actor=None, action="thing.failed", severity="error", success=False)
    assert AuditEvent.objects.get().severity == Severity.ERROR


@pytest.mark.parametrize("action", ["NoDots", "experiment", "experiment.Started", "a.b c", "x." * 60])
def test_malformed_actions_are_refused(action):
    with pytest.raises(ValidationFailed):
        audit_log(actor=None, action=action)


def test_unknown_severity_is_refused():
    with pytest.raises(ValidationFailed):
        audit_log(actor=None, action="thing.happened", severity="fatal")


def test_the_orm_refuses_updates_and_deletes():
    audit_log(actor=None, action="thing.happened")
    event = AuditEvent.objects.get()
    with pytest.raises(AppendOnlyViolation):
        AuditEvent.objects.update(action="thing.rewritten")
    with pytest.raises(AppendOnlyViolation):
        AuditEvent.objects.all().delete()
    with pytest.raises(AppendOnlyViolation):
        event.delete()
    event.action = "thing.rewritten"
    with pytest.raises(AppendOnlyViolation):
        event.save()
    with pytest.raises(AppendOnlyViolation):
        AuditEvent(action="thing.new", actor_label="x").save(update_fields=["action"])
    forged = AuditEvent(pk=event.pk, event_id=uuid.uuid4(), action="thing.rewritten", actor_label="mallory")
    with pytest.raises(IntegrityError), transaction.atomic():  # an INSERT the primary key refuses, not an UPDATE
        forged.save()
    with pytest.raises(AppendOnlyViolation):
        AuditEvent.objects.bulk_create(
            [forged], update_conflicts=True, unique_fields=["event_id"], update_fields=["action"]
        )
    with pytest.raises(AppendOnlyViolation):  # the same, its flags passed by position
        AuditEvent.objects.bulk_create([forged], None, False, True, ["action"], ["event_id"])
    assert list(AuditEvent.objects.values_list("action", "actor_label")) == [("thing.happened", "system")]
    AuditEvent.objects.bulk_create([AuditEvent(action="thing.added", actor_label="x")])  # inserts still work
    assert actions() == ["thing.happened", "thing.added"]


@pytest.mark.skipif(not POSTGRES, reason="the append-only trigger exists on PostgreSQL only")
def test_the_database_trigger_refuses_an_update():
    from django.db import DatabaseError

    audit_log(actor=None, action="thing.happened")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditevent SET action = 'thing.rewritten'")
    assert actions() == ["thing.happened"]


@pytest.mark.skipif(not POSTGRES, reason="the append-only trigger exists on PostgreSQL only")
def test_the_database_trigger_refuses_a_delete_outside_retention():
    from django.db import DatabaseError

    audit_log(actor=None, action="thing.happened")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditevent")
    assert actions() == ["thing.happened"]


@pytest.mark.skipif(not POSTGRES, reason="the append-only trigger exists on PostgreSQL only")
def test_the_database_trigger_refuses_a_second_fill_of_chain_fields():
    from django.db import DatabaseError

    audit_log(actor=None, action="thing.happened")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditevent SET chain_index = 1, prev_hash = 'a', hash = 'b'")
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            cursor.execute("UPDATE audit_auditevent SET chain_index = 2, prev_hash = 'c', hash = 'd'")
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            cursor.execute("UPDATE audit_auditevent SET chain_index = NULL, prev_hash = '', hash = ''")


@pytest.mark.skipif(not POSTGRES, reason="the append-only trigger exists on PostgreSQL only")
def test_the_database_trigger_refuses_a_chain_fill_that_also_changes_content():
    from django.db import DatabaseError

    audit_log(actor=None, action="thing.happened")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditevent SET chain_index = 1, prev_hash = 'a', hash = 'b', success = false")


def _event():
    from audit.services import build_event

    return build_event(actor=None, action="thing.happened")


def test_the_demo_seed_is_idempotent_and_masks_secrets():
    import io

    from audit import demo

    demo.seed(stdout=io.StringIO())
    demo.seed(stdout=io.StringIO())
    assert AuditEvent.objects.filter(resource_type="demo").count() == len(demo._EVENTS)
    assert AuditEvent.objects.get(action="auth.login_failed").details["password"] == MASK


def test_the_chain_status_reports_what_awaits_sealing():
    from audit.selectors import audit_chain_status

    audit_log(actor=None, action="thing.happened")
    status = audit_chain_status()
    assert (status["awaiting_seal"], status["last_sealed_at"], status["last_verification"]) == (1, None, None)
    assert status["awaiting_seal_capped"] is False


def test_the_chain_status_stops_counting_unsealed_events_at_its_cap(monkeypatch):
    from audit import selectors

    monkeypatch.setattr(selectors, "AWAITING_SEAL_CAP", 2)
    for _ in range(3):
        audit_log(actor=None, action="thing.happened")
    status = selectors.audit_chain_status()
    assert (status["awaiting_seal"], status["awaiting_seal_capped"]) == (2, True)
