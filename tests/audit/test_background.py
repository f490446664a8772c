"""The background writer (AUDIT_WRITE_MODE = "background"): requests hand their committed events to a
per-process thread that inserts them; nothing is lost, stored twice, or written that rolled back.

These tests use real commits (``transaction=True``): the writer's thread has its own connection, so
a test transaction around them would hide rows from it and its rows from the test.
"""

from __future__ import annotations

import json
import runpy
import threading
import time
import uuid
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import psycopg
import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.db import connection, connections, transaction
from django.http import HttpResponse
from django.test import RequestFactory

from agentplatform import counters
from audit import background
from audit.background import BackgroundWriter, flush_background_writer, stop_background_writer
from audit.middleware import AuditBufferMiddleware
from audit.models import AuditEvent
from audit.services import audit_log, build_event
from audit.writer import AuditWriteFailed, audit_buffer
from tests.conftest import PRODUCTION_ENV, ROOT, run_python
from tests.reliability.faults import default_database_through_proxy

POSTGRES = django_settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not POSTGRES, reason="the writer thread's own connection needs a server database"),
]


@pytest.fixture
def background_mode(settings):
    """Requests hand their events to the (fresh) process writer; it is drained after the test."""
    stop_background_writer(timeout=10)
    settings.AUDIT_WRITE_MODE = "background"
    settings.AUDIT_FLUSH_INTERVAL_SECONDS = 0.05
    settings.AUDIT_BACKGROUND_RETRY_MAX_SECONDS = 0.2
    yield settings
    stop_background_writer(timeout=30)


def request_doing(*calls):
    """Runs one request through the audit middleware whose view logs ``calls`` (kwargs of audit_log)."""

    def view(request):
        for call in calls:
            audit_log(actor=None, request=request, **call)
        return HttpResponse(status=200)

    return AuditBufferMiddleware(view)(RequestFactory().get("/x", REMOTE_ADDR="10.9.8.7"))


def stored_actions() -> list[str]:
    return list(AuditEvent.objects.order_by("id").values_list("action", flat=True))


def events(count: int, action: str = "thing.happened"):
    return [build_event(actor=None, action=action, resource_id=i) for i in range(count)]


def test_the_request_path_makes_no_query_and_the_writer_stores_each_event_exactly_once(
    background_mode, django_assert_num_queries
):
    with django_assert_num_queries(0):
        for i in range(40):
            request_doing({"action": "thing.happened", "resource_id": i}, {"action": "thing.seen", "resource_id": i})
    assert flush_background_writer(timeout=30)
    rows = list(AuditEvent.objects.values_list("action", "resource_id", "ip"))
    assert len(rows) == 80
    assert len(set(rows)) == 80
    assert {ip for _, _, ip in rows} == {"10.9.8.7"}


def test_the_writer_inserts_many_requests_together(background_mode, settings):
    settings.AUDIT_FLUSH_INTERVAL_SECONDS = 60  # only a flush or a full batch writes
    for i in range(30):
        request_doing({"action": "thing.happened", "resource_id": i})
    assert AuditEvent.objects.count() == 0  # still queued: nothing was inserted by the requests
    assert background.get_writer().depth() == 30
    assert flush_background_writer(timeout=30)
    assert AuditEvent.objects.count() == 30


def test_rolled_back_events_never_reach_the_writer_and_durable_ones_are_written_before_the_response(background_mode):
    def view(request):
        audit_log(actor=None, action="outside.kept")
        try:
            with transaction.atomic():
                audit_log(actor=None, action="auth.login_failed", durable=True, request=request)
                audit_log(actor=None, action="thing.undone", request=request)
                raise RuntimeError
        except RuntimeError:
            pass
        with transaction.atomic():
            audit_log(actor=None, action="thing.committed")
        return HttpResponse(status=401)

    background_mode.AUDIT_FLUSH_INTERVAL_SECONDS = 60
    response = AuditBufferMiddleware(view)(RequestFactory().post("/x"))
    assert response.status_code == 401
    # The durable event did not wait for the writer: it is stored when the response leaves.
    assert stored_actions() == ["auth.login_failed"]
    assert flush_background_writer(timeout=30)
    assert sorted(stored_actions()) == ["auth.login_failed", "outside.kept", "thing.committed"]


def test_a_durable_event_outside_any_transaction_is_not_queued_but_stored_before_the_response(background_mode):
    """A failed login is logged outside a transaction: it must not wait in memory for the writer."""
    background_mode.AUDIT_FLUSH_INTERVAL_SECONDS = 60
    background_mode.AUDIT_ASYNC_COMMIT = True
    statements = []

    def record(execute, sql, params, many, context):
        statements.append((sql, params))
        return execute(sql, params, many, context)

    # The statements this (the request's) connection sends to PostgreSQL.
    with connection.execute_wrapper(record):
        request_doing({"action": "thing.seen"}, {"action": "auth.login_failed", "durable": True})
    assert stored_actions() == ["auth.login_failed"]
    inserts = [(sql, params) for sql, params in statements if "INSERT INTO audit_auditevent" in sql]
    assert len(inserts) == 1 and "auth.login_failed" in inserts[0][1]
    # Its commit waited for the WAL flush: not the asynchronous commit AUDIT_ASYNC_COMMIT allows the writer.
    assert "synchronous_commit" not in inserts[0][0]
    assert background.get_writer().depth() == 1  # only the ordinary event is queued
    assert flush_background_writer(timeout=30)
    assert sorted(stored_actions()) == ["auth.login_failed", "thing.seen"]


def test_audit_buffer_blocks_and_calls_outside_a_request_stay_synchronous(background_mode):
    audit_log(actor=None, action="task.logged")
    with audit_buffer():
        audit_log(actor=None, action="block.logged")
    assert stored_actions() == ["task.logged", "block.logged"]
    assert background._writer is None  # nothing was handed over


def test_a_full_queue_makes_the_request_write_its_own_events(background_mode):
    background_mode.AUDIT_FLUSH_INTERVAL_SECONDS = 60
    background_mode.AUDIT_BACKGROUND_MAX_EVENTS = 2
    fallbacks = counters.value("audit_background_fallbacks")
    request_doing({"action": "first.queued"}, {"action": "second.queued"})
    assert stored_actions() == []
    request_doing({"action": "third.written"})  # the queue is full: written by the request itself
    assert stored_actions() == ["third.written"]
    assert counters.value("audit_background_fallbacks") == fallbacks + 1
    assert flush_background_writer(timeout=30)
    assert sorted(stored_actions()) == ["first.queued", "second.queued", "third.written"]


def test_a_full_queue_with_the_database_down_fails_the_request(database_behind_proxy, background_mode):
    background_mode.AUDIT_FLUSH_INTERVAL_SECONDS = 60
    background_mode.AUDIT_BACKGROUND_MAX_EVENTS = 1
    background_mode.AUDIT_WRITE_RETRY_BACKOFF_SECONDS = 0
    request_doing({"action": "first.queued"})
    database_behind_proxy.cut()  # PostgreSQL unreachable for the request and the writer alike
    with pytest.raises(AuditWriteFailed):
        request_doing({"action": "second.refused"})
    database_behind_proxy.restore()
    connection.close()  # the request's connection was reset by the outage
    assert flush_background_writer(timeout=30)
    assert stored_actions() == ["first.queued"]


def test_stop_drains_every_queued_event_before_returning():
    writer = BackgroundWriter(max_events=10_000, flush_interval=60, retry_max_seconds=0.2)
    queued = events(700)
    assert writer.submit(queued[:300]) and writer.submit(queued[300:])
    assert writer.stop(timeout=30) == 0
    assert AuditEvent.objects.count() == 700
    assert not writer.submit(events(1))  # a stopped writer sends callers back to the synchronous path


def test_the_gunicorn_worker_exit_hook_drains_the_process_writer(background_mode):
    background_mode.AUDIT_FLUSH_INTERVAL_SECONDS = 60
    for i in range(25):
        request_doing({"action": "thing.happened", "resource_id": i})
    assert AuditEvent.objects.count() == 0
    hooks = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    hooks["worker_exit"](None, None)
    assert AuditEvent.objects.count() == 25
    assert background._writer is None


def test_a_celery_worker_shutting_down_drains_the_process_writer(background_mode):
    from celery.signals import worker_process_shutdown

    background_mode.AUDIT_FLUSH_INTERVAL_SECONDS = 60
    for i in range(10):
        request_doing({"action": "thing.happened", "resource_id": i})
    assert AuditEvent.objects.count() == 0
    worker_process_shutdown.send(sender=None, pid=0, exitcode=0)
    assert AuditEvent.objects.count() == 10
    assert background._writer is None


def test_a_process_exiting_normally_stores_what_it_had_queued(tmp_path):
    database = connection.settings_dict
    event_ids = [str(uuid.uuid4()) for _ in range(5)]
    script = f"""
import django
django.setup()
from audit.background import submit
from audit.services import build_event
ids = {event_ids!r}
assert submit([build_event(actor=None, action="exit.drained", event_id=event_id) for event_id in ids])
print("queued")
"""
    env = {
        **PRODUCTION_ENV,
        "DJANGO_SETTINGS_MODULE": "agentplatform.settings",
        "DATABASE_URL": f"postgres://{database['USER'] or 'root'}@{database['HOST'] or '127.0.0.1'}:"
        f"{database['PORT'] or 5432}/{database['NAME']}",
        "AUDIT_FLUSH_INTERVAL_SECONDS": "60",  # only the exit drain can write them
        "AUDIT_EXPORT_DIR": str(tmp_path),
        "LOG_LEVEL": "WARNING",
    }
    result = run_python(script, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "queued" in result.stdout
    assert AuditEvent.objects.filter(event_id__in=event_ids).count() == 5
    assert not (tmp_path / "audit" / "undelivered.jsonl").exists()


@pytest.fixture
def database_behind_proxy():
    with default_database_through_proxy() as proxy:
        yield proxy


def direct_count(event_ids) -> int:
    """Rows with these ids, read on a connection that bypasses the proxy."""
    database = django_settings.DATABASES["default"]
    with psycopg.connect(
        host=database["HOST"] or "127.0.0.1",
        port=int(database["PORT"] or 5432),
        user=database["USER"] or "root",
        dbname=connection.settings_dict["NAME"],
    ) as direct:
        return direct.execute(
            "SELECT count(*) FROM audit_auditevent WHERE event_id = ANY(%s)", [list(event_ids)]
        ).fetchone()[0]


def wait_until(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_an_unreachable_database_is_retried_and_the_events_stored_after_recovery(settings, database_behind_proxy):
    settings.AUDIT_WRITE_RETRY_BACKOFF_SECONDS = 0
    writer = BackgroundWriter(max_events=10_000, flush_interval=0.02, retry_max_seconds=0.1)
    failures = counters.value("audit_background_write_failures")
    database_behind_proxy.cut()
    queued = events(30)
    assert writer.submit(queued)
    assert wait_until(lambda: counters.value("audit_background_write_failures") >= failures + 2)
    assert writer.depth() == 30  # kept, not dropped
    database_behind_proxy.restore()
    assert writer.flush(timeout=30)
    assert writer.stop(timeout=10) == 0
    assert direct_count(e.event_id for e in queued) == 30


def test_a_batch_whose_insert_was_lost_after_commit_is_not_stored_twice(settings, database_behind_proxy):
    settings.AUDIT_WRITE_RETRY_BACKOFF_SECONDS = 0
    # PostgreSQL commits the writer's first batch; its "COMMIT" reply never reaches the writer.
    database_behind_proxy.drop_reply_holding(b"COMMIT\x00")
    writer = BackgroundWriter(max_events=10_000, flush_interval=0.02, retry_max_seconds=0.1)
    queued = events(50)
    assert writer.submit(queued)
    assert writer.flush(timeout=30)
    writer.stop(timeout=10)
    assert database_behind_proxy.dropped_replies == 1
    assert direct_count(e.event_id for e in queued) == 50


def test_an_event_the_database_refuses_is_set_aside_in_the_undelivered_file_and_the_rest_stored(settings, tmp_path):
    settings.AUDIT_EXPORT_DIR = tmp_path
    undelivered = counters.value("audit_background_undelivered")
    batch = events(25)
    batch[7].resource_id = "bad\x00id"  # PostgreSQL text cannot hold NUL: this row alone is refused
    writer = BackgroundWriter(max_events=10_000, flush_interval=0.02, retry_max_seconds=0.1)
    assert writer.submit(batch)
    assert writer.flush(timeout=30)
    writer.stop(timeout=10)
    assert AuditEvent.objects.count() == 24
    lines = (tmp_path / "audit" / "undelivered.jsonl").read_text().splitlines()
    assert [json.loads(line)["event_id"] for line in lines] == [str(batch[7].event_id)]
    assert counters.value("audit_background_undelivered") == undelivered + 1


def test_stop_sets_aside_what_it_cannot_store_in_time(settings, tmp_path, database_behind_proxy):
    settings.AUDIT_EXPORT_DIR = tmp_path
    settings.AUDIT_WRITE_RETRY_BACKOFF_SECONDS = 0
    database_behind_proxy.cut()  # down for the whole drain
    writer = BackgroundWriter(max_events=10_000, flush_interval=0.02, retry_max_seconds=0.05)
    queued = events(12)
    assert writer.submit(queued)
    assert writer.stop(timeout=0.5) == 12
    lines = (tmp_path / "audit" / "undelivered.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["event_id"] for line in lines) == sorted(str(e.event_id) for e in queued)
    database_behind_proxy.restore()
    assert direct_count(e.event_id for e in queued) == 0


def test_concurrent_requests_lose_nothing(background_mode):
    def worker(offset):
        for i in range(50):
            request_doing({"action": "thing.happened", "resource_id": offset + i})
        connections.close_all()

    threads = [threading.Thread(target=worker, args=(n * 1000,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert flush_background_writer(timeout=30)
    assert AuditEvent.objects.count() == 200
    assert AuditEvent.objects.values("resource_id").distinct().count() == 200


def test_web_processes_default_to_background_and_tests_to_request():
    assert django_settings.AUDIT_WRITE_MODE == "request"
    result = run_python(
        "import django; django.setup(); from django.conf import settings; print(settings.AUDIT_WRITE_MODE)",
        env={**PRODUCTION_ENV, "DJANGO_SETTINGS_MODULE": "agentplatform.settings"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "background"


def staging_tables() -> int:
    """Staging tables of the ON CONFLICT path (``agentplatform.ingest.copy_staged``) alive in any
    session of the test database: a session creates one the first time it takes that path."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_class "
            "WHERE relpersistence = 't' AND relname LIKE 'audit\\_auditevent\\_stage\\_%%'"
        )
        return cursor.fetchone()[0]


@pytest.fixture
def direct_copies(monkeypatch):
    """Each optimistic COPY the writer tries, as (events, stored whole).

    Only for the thread-death test below, which must stub the write anyway: there a COPY attempt
    and its outcome have to be told apart inside one writer session, which the database does not
    show from outside (the other tests observe the staging tables instead).
    """
    from audit import writer as writer_module

    calls = []
    real_copy_direct = writer_module._copy_direct

    def spy(connection_, batch, **options):
        stored = real_copy_direct(connection_, batch, **options)
        calls.append((len(batch), stored))
        return stored

    monkeypatch.setattr(writer_module, "_copy_direct", spy)
    return calls


def test_the_writer_copies_fresh_events_straight_into_the_table():
    queued = [
        build_event(
            actor=None,
            action="thing.copied",
            resource_id=i,
            details={"tab": "a\tb", "newline": "x\ny", "backslash": "c:\\d", "unicode": "é✓"},
        )
        for i in range(30)
    ]
    queued[0].ip = "2001:db8::1"
    # COPY's text format gives tab, newline, carriage return and backslash a meaning; \N is NULL.
    awkward = "tab\there, line\nbreak, cr\rhere, back\\slash, \\N"
    queued[0].user_agent = queued[0].actor_label = queued[0].resource_id = awkward
    queued[0].resource_type = queued[0].request_id = "\\N"
    user = get_user_model().objects.create_user("copied-actor")
    queued[1].actor_id = user.pk
    queued[1].occurred_at = datetime(2026, 7, 1, 9, 30, 15, 123456, tzinfo=ZoneInfo("Europe/Berlin"))
    queued[1].success = False
    queued[2].details, queued[2].details_json = {"made": "by hand", "n": [1, 2]}, None  # encoded by the writer
    staged_before = staging_tables()
    writer = BackgroundWriter(max_events=10_000, flush_interval=0.02, retry_max_seconds=0.1)
    assert writer.submit(queued)
    assert writer.flush(timeout=30)
    # 30 events are past the one-statement VALUES path, and the writer's session made no staging
    # table: the batch went by the optimistic COPY (read while the writer's session is open).
    assert staging_tables() == staged_before
    writer.stop(timeout=10)
    rows = {row.event_id: row for row in AuditEvent.objects.all()}
    assert set(rows) == {e.event_id for e in queued}
    first = rows[queued[0].event_id]
    assert first.details == {"tab": "a\tb", "newline": "x\ny", "backslash": "c:\\d", "unicode": "é✓"}
    assert first.ip == "2001:db8::1"
    assert first.user_agent == first.actor_label == first.resource_id == awkward
    assert first.resource_type == first.request_id == "\\N"  # the two characters, not NULL
    assert (first.chain_index, first.prev_hash, first.hash) == (None, "", "")
    assert first.occurred_at == queued[0].occurred_at
    assert first.actor_id is None
    assert first.success is True
    second = rows[queued[1].event_id]
    assert second.actor_id == user.pk
    assert second.occurred_at == datetime(2026, 7, 1, 7, 30, 15, 123456, tzinfo=UTC)  # the same instant
    assert second.success is False
    assert second.ip is None  # NULL, not an empty or "\\N" string
    assert rows[queued[2].event_id].details == {"made": "by hand", "n": [1, 2]}


def test_an_optimistic_batch_holding_a_stored_id_is_written_with_on_conflict_instead(caplog):
    from audit.writer import insert_events

    skipped_before = counters.value("audit_duplicate_ids_skipped")
    stored_first = events(3)
    insert_events(stored_first)
    connection.close()  # a fresh session, with no staging table yet
    staged_before = staging_tables()
    batch = [stored_first[1], *events(40)]
    insert_events(batch, returning=False, optimistic=True)
    assert staging_tables() == staged_before + 1  # refused whole by the COPY, then staged with ON CONFLICT
    assert AuditEvent.objects.count() == 43
    assert AuditEvent.objects.filter(event_id=stored_first[1].event_id).count() == 1
    assert counters.value("audit_duplicate_ids_skipped") == skipped_before + 1
    assert str(stored_first[1].event_id) in caplog.text


def test_a_few_events_go_as_one_values_statement_even_when_optimistic():
    from audit.writer import insert_events

    statements = []

    def record(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        insert_events(events(5), returning=False, optimistic=True)
    # One INSERT ... VALUES stored them: a COPY first would have stored them with no statement at all.
    assert len(statements) == 1 and "INSERT INTO audit_auditevent" in statements[0] and "VALUES" in statements[0]
    assert AuditEvent.objects.count() == 5


def test_after_a_failed_attempt_the_writer_stays_on_the_idempotent_path_until_one_succeeds(monkeypatch):
    from django.db import OperationalError

    from audit import writer as writer_module

    real_insert = writer_module.insert_events
    attempts = []

    def flaky(batch, **options):
        attempts.append(options["optimistic"])
        if len(attempts) == 1:
            raise OperationalError("connection lost")
        return real_insert(batch, **options)

    # Stubbed: which path each attempt asks for is the claim, and a real outage (the proxy) leaves
    # both paths storing the same rows; the flag the writer passes is the only place it shows.
    monkeypatch.setattr(background, "insert_events", flaky)
    writer = BackgroundWriter(max_events=10_000, flush_interval=0.02, retry_max_seconds=0.05)
    assert writer.submit(events(5))
    assert writer.flush(timeout=30)
    assert writer.submit(events(5))
    assert writer.flush(timeout=30)
    writer.stop(timeout=10)
    assert attempts == [True, False, True]
    assert AuditEvent.objects.count() == 10


def test_a_request_hands_each_committed_event_over_as_it_is_logged(background_mode):
    background_mode.AUDIT_FLUSH_INTERVAL_SECONDS = 60
    depths = []

    def view(request):
        audit_log(actor=None, action="first.logged", request=request)
        depths.append(background.get_writer().depth())
        with transaction.atomic():
            audit_log(actor=None, action="second.logged", request=request)
            depths.append(background.get_writer().depth())  # waits for the commit
        depths.append(background.get_writer().depth())
        return HttpResponse(status=200)

    AuditBufferMiddleware(view)(RequestFactory().get("/x"))
    assert depths == [1, 1, 2]
    assert flush_background_writer(timeout=30)
    assert sorted(stored_actions()) == ["first.logged", "second.logged"]


class _ThreadKilled(BaseException):
    """Escapes the writer's handlers (they catch Exception), ending its thread as a crash would."""


@pytest.mark.parametrize("committed_before_dying", [False, True])
def test_a_writer_whose_thread_died_starts_a_new_one_and_stores_each_event_once(
    monkeypatch, direct_copies, committed_before_dying
):
    from audit import writer as writer_module

    real_insert = writer_module.insert_events
    calls = []

    def dies_once(batch, **options):
        calls.append((len(batch), options["optimistic"]))
        if len(calls) == 1:
            if committed_before_dying:
                real_insert(batch, **options)  # stored, then the thread dies before it learns so
            raise _ThreadKilled
        return real_insert(batch, **options)

    # Stubbed: nothing outside a Python thread can end it at a chosen point (mid-write, before or
    # after its commit); an exception raised from inside the write is how a thread dies.
    monkeypatch.setattr(background, "insert_events", dies_once)
    monkeypatch.setattr(threading, "excepthook", lambda args: None)  # the crash is expected here
    writer = BackgroundWriter(max_events=10_000, flush_interval=0.01, retry_max_seconds=0.05)
    first, second = events(30, "first.batch"), events(5, "second.batch")
    assert writer.submit(first)
    assert wait_until(lambda: not writer._running)  # the thread is gone, its batch put back
    assert writer.depth() == 30
    assert writer.submit(second)  # starts a new thread, which writes both
    assert writer.flush(timeout=30)
    writer.stop(timeout=10)
    assert sorted(stored_actions()) == ["first.batch"] * 30 + ["second.batch"] * 5
    # The batch the dead thread held may have been committed: it is retried through ON CONFLICT,
    # never by another COPY that would fail on its own rows.
    assert calls == [(30, True), (35, False)]
    assert direct_copies == ([(30, True)] if committed_before_dying else [])


def test_flush_returns_false_at_once_when_no_thread_is_left_to_write(monkeypatch, settings, tmp_path):
    settings.AUDIT_EXPORT_DIR = tmp_path  # stop() sets the unwritten events aside there

    def dies(batch, **options):
        raise _ThreadKilled

    # Stubbed as above: a thread dies only from inside.
    monkeypatch.setattr(background, "insert_events", dies)
    monkeypatch.setattr(threading, "excepthook", lambda args: None)
    writer = BackgroundWriter(max_events=10_000, flush_interval=0.01, retry_max_seconds=0.05)
    assert writer.submit(events(3))
    assert wait_until(lambda: not writer._running)
    # Nothing would wake a wait: the dying thread notified before it was gone. Without a timing
    # assertion, failing any wait is how the test tells "returned at once" from "waited 20 s".
    monkeypatch.setattr(writer._condition, "wait", lambda timeout=None: pytest.fail("waited for a dead thread"))
    assert writer.flush(timeout=20) is False
    assert writer.depth() == 3  # still queued, for the next thread or the exit drain
    assert writer.stop(timeout=1) == 3  # no thread to drain them: set aside, not lost
    assert len((tmp_path / "audit" / "undelivered.jsonl").read_text().splitlines()) == 3


def test_a_thread_that_cannot_start_sends_the_caller_back_to_writing_its_own_events(monkeypatch):
    writer = BackgroundWriter(max_events=10_000, flush_interval=0.01, retry_max_seconds=0.05)

    def cannot_start(self):
        raise RuntimeError("can't start new thread")

    # Stubbed: making the OS refuse a thread would mean exhausting the limit for the whole test
    # process (and whatever shares the machine).
    monkeypatch.setattr(threading.Thread, "start", cannot_start)
    assert writer.submit(events(2)) is False
    assert writer.depth() == 0  # nothing left behind that no thread would write
    monkeypatch.undo()
    assert writer.submit(events(2)) is True  # the next call tries again
    assert writer.flush(timeout=30)
    writer.stop(timeout=10)
    assert AuditEvent.objects.count() == 2
