"""Tamper evidence: sealing, verify_audit against modified, deleted, reordered and rewritten rows,
retention with its checkpoint, and period exports."""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
import logging
from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from audit.chain import GENESIS_HASH, link_hash
from audit.integrity import audit_seal_pending, audit_verify_chain, head_file_path
from audit.models import AppendOnlyViolation, AuditCheckpoint, AuditEvent, AuditExport, AuditSealing, AuditVerification
from audit.retention import audit_export_period, audit_retention_run, read_archive

pytestmark = pytest.mark.django_db
POSTGRES = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
LATER = timedelta(minutes=1)


@pytest.fixture
def seal(django_capture_on_commit_callbacks):
    """Seals as the job does, a minute after now, running the after-commit head publication."""

    def run(now=None):
        with django_capture_on_commit_callbacks(execute=True):
            return audit_seal_pending(now=now or timezone.now() + LATER)

    return run


@pytest.fixture
def sealed_log(store_events, seal):
    events = store_events(*({"action": "thing.happened", "resource_id": i, "details": {"n": i}} for i in range(6)))
    assert seal() == 6
    return [AuditEvent.objects.get(event_id=e.event_id) for e in events]


def tamper(sql: str, params=()) -> None:
    """Changes the table as someone with the owner's rights would: trigger off, raw SQL, trigger on."""
    with connection.cursor() as cursor:
        if POSTGRES:
            cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_guard")
        cursor.execute(sql, params)
        if POSTGRES:
            cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_event_guard")


def verify_command(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("verify_audit", *args, stdout=out)
    except CommandError as error:
        return error.returncode, str(error)
    return 0, out.getvalue()


# --- sealing -----------------------------------------------------------------------------------


def test_sealing_links_events_in_id_order(sealed_log):
    rows = list(AuditEvent.objects.order_by("id").values("id", "chain_index", "prev_hash", "hash"))
    assert [row["chain_index"] for row in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[0]["prev_hash"] == GENESIS_HASH
    for before, after in itertools.pairwise(rows):
        assert after["prev_hash"] == before["hash"]


def test_the_hash_is_sha256_of_the_previous_hash_and_canonical_content(sealed_log):
    from audit.chain import CHAIN_COLUMNS

    row = AuditEvent.objects.filter(chain_index=2).values(*CHAIN_COLUMNS).get()
    assert row["hash"] == link_hash(row, row["prev_hash"])
    assert len(row["hash"]) == 64


def test_sealing_skips_young_events(store_events, seal):
    store_events({"action": "thing.happened"})
    assert seal(timezone.now()) == 0
    assert AuditEvent.objects.filter(chain_index__isnull=True).count() == 1


def test_sealing_stops_at_the_first_young_event_even_if_older_ones_follow(store_events, seal):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        store_events({"action": "first.happened"})
    with time_machine.travel(start + timedelta(seconds=10), tick=False):
        store_events({"action": "second.happened"})  # a late commit: young at sealing time
    with time_machine.travel(start + timedelta(seconds=1), tick=False):
        store_events({"action": "third.happened"})  # a higher id recorded earlier (out-of-order commit)
    assert seal(start + timedelta(seconds=12)) == 1
    assert list(AuditEvent.objects.filter(chain_index__isnull=False).values_list("action", flat=True)) == [
        "first.happened"
    ]


def test_sealing_continues_the_chain_in_batches(store_events, seal, settings):
    settings.AUDIT_SEAL_BATCH_SIZE = 2
    store_events(*({"action": "thing.happened"} for _ in range(5)))
    assert seal() == 5
    store_events(*({"action": "thing.happened"} for _ in range(2)))
    assert seal() == 2
    assert sorted(AuditEvent.objects.values_list("chain_index", flat=True)) == [1, 2, 3, 4, 5, 6, 7]
    assert audit_verify_chain().ok


def test_every_sealing_writes_the_chain_head_outside_the_table(store_events, seal, caplog):
    store_events({"action": "thing.happened"}, {"action": "thing.happened"})
    with caplog.at_level(logging.INFO, logger="audit"):
        seal()
    head = AuditEvent.objects.get(chain_index=2)
    sealing = AuditSealing.objects.get()
    assert (sealing.last_chain_index, sealing.head_hash, sealing.event_count) == (2, head.hash, 2)
    line = json.loads(head_file_path().read_text().splitlines()[-1])
    assert (line["chain_index"], line["hash"]) == (2, head.hash)
    assert any(head.hash in record.getMessage() for record in caplog.records)


def test_nothing_to_seal_records_nothing(seal):
    assert seal() == 0
    assert not AuditSealing.objects.exists()


# --- verification ------------------------------------------------------------------------------


def test_verify_passes_on_an_intact_chain(sealed_log):
    code, output = verify_command()
    assert code == 0
    assert "6 sealed events verified" in output
    assert AuditVerification.objects.get().ok


def test_verify_names_a_modified_event(sealed_log):
    victim = sealed_log[2]
    tamper("UPDATE audit_auditevent SET success = %s WHERE id = %s", [False, victim.pk])
    code, message = verify_command()
    assert code == 1
    assert f"event {victim.pk} " in message
    assert "modified" in message
    assert AuditVerification.objects.get().first_broken_event_id == victim.pk


def test_verify_names_the_event_after_a_deleted_one(sealed_log):
    tamper("DELETE FROM audit_auditevent WHERE id = %s", [sealed_log[2].pk])
    code, message = verify_command()
    assert code == 1
    assert f"event {sealed_log[3].pk} " in message
    assert "deleted" in message


def test_verify_detects_deleted_events_at_the_end_of_the_chain(sealed_log):
    tamper("DELETE FROM audit_auditevent WHERE id = %s", [sealed_log[-1].pk])
    code, message = verify_command()
    assert code == 1
    assert "at the end of the chain were deleted" in message


def test_verify_names_the_first_of_two_swapped_events(sealed_log):
    second, third = sealed_log[1], sealed_log[2]
    tamper("UPDATE audit_auditevent SET chain_index = -1 WHERE id = %s", [second.pk])
    tamper("UPDATE audit_auditevent SET chain_index = %s WHERE id = %s", [second.chain_index, third.pk])
    tamper("UPDATE audit_auditevent SET chain_index = %s WHERE id = %s", [third.chain_index, second.pk])
    code, message = verify_command()
    assert code == 1
    assert f"event {third.pk} " in message


def test_verify_detects_a_rewrite_of_the_whole_table_against_the_recorded_head(sealed_log):
    from audit.chain import CHAIN_COLUMNS

    # Rewrite an event and recompute every hash after it: the chain is consistent in itself...
    tamper("UPDATE audit_auditevent SET action = 'thing.forged' WHERE id = %s", [sealed_log[1].pk])
    prev = sealed_log[0].hash
    for row in AuditEvent.objects.filter(chain_index__gte=2).order_by("chain_index").values(*CHAIN_COLUMNS):
        new_hash = link_hash(row, prev)
        tamper("UPDATE audit_auditevent SET prev_hash = %s, hash = %s WHERE id = %s", [prev, new_hash, row["id"]])
        prev = new_hash
    # ...but not with the head recorded outside it.
    code, message = verify_command()
    assert code == 1
    assert "rewritten" in message


def test_verify_of_an_empty_log_passes(db):
    assert audit_verify_chain().ok


# --- retention ---------------------------------------------------------------------------------


@pytest.fixture
def aged_log(store_events, seal, settings):
    """Four events recorded 40 days ago and two today, all sealed; retention keeps 30 days."""
    settings.AUDIT_RETENTION_DAYS = 30
    with time_machine.travel(timezone.now() - timedelta(days=40), tick=False):
        old = store_events(*({"action": "old.happened", "details": {"formula": "=1+1"}} for _ in range(4)))
    new = store_events({"action": "new.happened"}, {"action": "new.happened"})
    seal()
    return old, new


def test_retention_archives_then_deletes_old_events_and_verification_still_passes(
    aged_log, django_capture_on_commit_callbacks
):
    old, _new = aged_log
    assert audit_retention_run() == 4
    assert set(AuditEvent.objects.values_list("action", flat=True)) == {"new.happened", "audit.retention_completed"}
    archive = AuditExport.objects.get(kind="archive")
    with gzip.open(settings.MEDIA_ROOT / archive.path, "rt", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert sorted(row["event_id"] for row in rows) == sorted(str(e.event_id) for e in old)
    assert rows[0]["details"] == '{"formula":"=1+1"}'
    checkpoint = AuditCheckpoint.objects.order_by("-id").first()
    assert checkpoint.last_chain_index == 4
    assert audit_verify_chain().ok
    code, _ = verify_command()
    assert code == 0


def test_retention_deletes_in_bounded_batches_with_a_checkpoint_each(aged_log, settings):
    settings.AUDIT_RETENTION_BATCH_SIZE = 3
    assert audit_retention_run() == 4
    assert list(AuditCheckpoint.objects.order_by("id").values_list("last_chain_index", "deleted_count")) == [
        (3, 3),
        (4, 1),
    ]


def test_retention_after_retention_and_more_sealing_still_verifies(aged_log, store_events, seal):
    audit_retention_run()
    store_events({"action": "newer.happened"})
    seal()
    assert audit_retention_run() == 0
    assert audit_verify_chain().ok


def test_retention_leaves_unsealed_events_alone(settings, store_events):
    settings.AUDIT_RETENTION_DAYS = 30
    with time_machine.travel(timezone.now() - timedelta(days=40), tick=False):
        store_events({"action": "old.happened"})
    assert audit_retention_run() == 0
    assert AuditEvent.objects.count() == 1


def test_verify_still_catches_tampering_after_retention(aged_log):
    _, new = aged_log
    audit_retention_run()
    tamper(
        "UPDATE audit_auditevent SET success = false WHERE event_id = %s",
        [new[1].event_id.hex if not POSTGRES else new[1].event_id],
    )
    result = audit_verify_chain()
    assert not result.ok


def test_the_archive_holds_the_exact_values_so_verification_recomputes_every_archived_hash(
    store_events, seal, settings
):
    settings.AUDIT_RETENTION_DAYS = 30
    tricky = ["=1+1", "'=1+1", "'", "-", "@x", "\ttab", "line\nbreak", "plain"]
    with time_machine.travel(timezone.now() - timedelta(days=40), tick=False):
        store_events(*({"action": "old.happened", "actor": text, "resource_id": text} for text in tricky))
    seal()
    assert audit_retention_run() == len(tricky)
    archive = settings.MEDIA_ROOT / AuditExport.objects.get(kind="archive").path
    rows = list(read_archive(archive))
    assert [row["actor_label"] for row in rows] == tricky
    assert all(link_hash(row, row["prev_hash"]) == row["hash"] for row in rows)
    result = audit_verify_chain(archives="all")
    assert result.ok, result.message
    assert f"{len(tricky)} archived events verified" in result.message


def test_recent_events_deleted_behind_a_forged_checkpoint_are_caught(aged_log):
    """Someone with database access deletes the newest sealed events as retention would, and adds a
    checkpoint to match: the archives, outside the database, hold no such rows."""
    _, new = aged_log
    audit_retention_run()
    newest = AuditEvent.objects.get(event_id=new[0].event_id)
    assert audit_verify_chain().ok
    tamper("DELETE FROM audit_auditevent WHERE chain_index <= %s", [newest.chain_index])
    AuditCheckpoint.objects.create(
        last_chain_index=newest.chain_index,
        last_hash=newest.hash,
        deleted_count=1,
        archive=AuditCheckpoint.objects.order_by("-id").first().archive,
    )
    result = audit_verify_chain()
    assert not result.ok
    assert f"chain position {newest.chain_index} was removed" in result.message
    code, message = verify_command()
    assert code == 1 and "events deleted outside retention" in message


def test_a_missing_archive_fails_verification_unless_archives_are_skipped(aged_log, settings):
    audit_retention_run()
    archive = settings.MEDIA_ROOT / AuditExport.objects.get(kind="archive").path
    archive.rename(archive.with_name("moved.csv.gz"))
    result = audit_verify_chain()
    assert not result.ok and "not in the export storage" in result.message
    assert audit_verify_chain(archives="none").ok
    code, _ = verify_command("--archives", "none")
    assert code == 0


def test_an_archive_that_cannot_be_read_fails_verification_with_a_message(aged_log, settings):
    audit_retention_run()
    archive = settings.MEDIA_ROOT / AuditExport.objects.get(kind="archive").path
    archive.write_bytes(b"not gzip at all")
    result = audit_verify_chain()
    assert not result.ok and "cannot be read (BadGzipFile" in result.message
    code, message = verify_command()
    assert code == 1 and "cannot be read" in message


def rewrite_archive(edit) -> None:
    """Runs retention, then replaces its archive's text with ``edit(text)`` (someone with file access)."""
    audit_retention_run()
    archive = settings.MEDIA_ROOT / AuditExport.objects.get(kind="archive").path
    with gzip.open(archive, "rt", encoding="utf-8") as file:
        text = file.read()
    with gzip.open(archive, "wt", encoding="utf-8") as file:
        file.write(edit(text))


def test_a_truncated_archive_row_fails_verification_instead_of_crashing_it(aged_log):
    rewrite_archive(lambda text: text.rstrip("\r\n").rsplit(",", 5)[0] + "\r\n")
    result = audit_verify_chain()
    assert not result.ok and "cannot be read" in result.message
    assert AuditVerification.objects.order_by("-id").first().ok is False  # recorded for the status line


def test_a_modified_archive_is_caught(aged_log):
    rewrite_archive(lambda text: text.replace("old.happened", "old.rewritten", 1))
    result = audit_verify_chain()
    assert not result.ok and "content does not match its hash" in result.message


@pytest.mark.skipif(not POSTGRES, reason="the append-only triggers exist on PostgreSQL only")
def test_the_database_refuses_to_change_or_delete_a_checkpoint(aged_log):
    from django.db import DatabaseError, transaction

    audit_retention_run()
    for sql in ("UPDATE audit_auditcheckpoint SET last_hash = 'x'", "DELETE FROM audit_auditcheckpoint"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)
    checkpoint = AuditCheckpoint.objects.get()
    with pytest.raises(AppendOnlyViolation):
        checkpoint.delete()
    with pytest.raises(AppendOnlyViolation):
        AuditCheckpoint.objects.update(last_hash="x")


@pytest.mark.skipif(not POSTGRES, reason="the append-only trigger exists on PostgreSQL only")
def test_the_retention_flag_is_transaction_local(aged_log):
    from django.db import DatabaseError, transaction

    audit_retention_run()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditevent")


# --- exports and tasks -------------------------------------------------------------------------


def test_export_period_writes_the_events_of_the_range_and_audits_itself(store_events):
    day = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    store_events(
        {"action": "in.range", "occurred_at": day + timedelta(hours=3), "resource_id": "-2+3"},
        {"action": "out.of_range", "occurred_at": day - timedelta(hours=3)},
    )
    export = audit_export_period(start=day, end=day + timedelta(days=1))
    with open(settings.MEDIA_ROOT / export.path, encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert [row["action"] for row in rows] == ["in.range"]
    assert rows[0]["resource_id"] == "'-2+3"  # formula cells neutralised
    assert export.row_count == 1
    assert AuditEvent.objects.filter(action="audit.exported", actor_label="system:audit_export").exists()


def test_the_audit_jobs_run_the_services(store_events, django_capture_on_commit_callbacks):
    from agentplatform.scheduling.tasks import JOB_TASKS
    from reports.models import JobRun

    store_events({"action": "thing.happened", "occurred_at": timezone.now() - timedelta(days=1)})
    with time_machine.travel(timezone.now() + LATER), django_capture_on_commit_callbacks(execute=True):
        JOB_TASKS["audit_seal"].apply()
    assert JobRun.objects.get(job="audit_seal").rows_affected == 1
    JOB_TASKS["audit_retention"].apply()
    retention = JobRun.objects.get(job="audit_retention")
    assert (retention.outcome, retention.rows_affected) == ("success", 0)
