"""Tamper evidence: sealing new events into the hash chain, and verifying the chain.

The sealer takes unsealed events in id order, but only those recorded more than
``AUDIT_SEAL_DELAY_SECONDS`` ago, and stops at the first younger one: ids come from a sequence and
commit out of order, so a gap just before a young row may still fill. An id that commits later
than that is sealed on a later run, at the end of the chain (the chain's order is ``chain_index``,
not ``id``). Every sealing writes the new chain head to a log line, to the ``AuditSealing`` table
and to a JSON-lines file under the export directory, so a rewrite of the whole table (hashes
recomputed) still disagrees with a head recorded outside it.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audit.chain import CHAIN_COLUMNS, GENESIS_HASH, link_hash
from audit.models import AuditCheckpoint, AuditEvent, AuditSealing, AuditVerification
from audit.retention import read_archive

logger = logging.getLogger("audit")

# Any constant shared by every sealer: PostgreSQL advisory lock key ("audit" in ASCII).
_SEAL_LOCK_KEY = 0x6175646974
_VERIFY_CHUNK = 5000


def head_file_path() -> Path:
    return Path(settings.AUDIT_EXPORT_DIR) / "audit" / "chain-heads.jsonl"


def _chain_start() -> tuple[int, str]:
    """The (chain index, hash) the next sealed event links to."""
    head = (
        AuditEvent.objects.filter(chain_index__isnull=False)
        .order_by("-chain_index")
        .values_list("chain_index", "hash")
        .first()
    )
    if head:
        return head
    checkpoint = AuditCheckpoint.objects.order_by("-id").values_list("last_chain_index", "last_hash").first()
    return checkpoint or (0, GENESIS_HASH)


def audit_seal_pending(*, now: datetime | None = None) -> int:
    """Seals every event old enough, in id order, into the hash chain; returns how many."""
    now = now or timezone.now()
    horizon = now - timedelta(seconds=settings.AUDIT_SEAL_DELAY_SECONDS)
    total = 0
    while True:
        sealed, complete = _seal_batch(horizon=horizon, now=now)
        total += sealed
        if complete:
            return total


def _seal_batch(*, horizon: datetime, now: datetime) -> tuple[int, bool]:
    batch_size = settings.AUDIT_SEAL_BATCH_SIZE
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_SEAL_LOCK_KEY])
        index, prev_hash = _chain_start()
        candidates = list(
            AuditEvent.objects.filter(chain_index__isnull=True).order_by("id").values(*CHAIN_COLUMNS)[:batch_size]
        )
        updates = []
        for row in candidates:
            if row["recorded_at"] > horizon:
                break  # a young row: an id before it may still commit, so the chain waits here
            index += 1
            row["chain_index"] = index
            row_hash = link_hash(row, prev_hash)
            updates.append((index, prev_hash, row_hash, row["id"]))
            prev_hash = row_hash
        if not updates:
            return 0, True
        _fill_chain_fields(updates)
        sealing = AuditSealing.objects.create(
            sealed_at=now,
            event_count=len(updates),
            first_chain_index=updates[0][0],
            last_chain_index=index,
            last_event_id=updates[-1][3],
            head_hash=prev_hash,
        )
        transaction.on_commit(lambda: _publish_head(sealing))
    complete = len(updates) < len(candidates) or len(candidates) < batch_size
    return len(updates), complete


def _fill_chain_fields(updates: list[tuple[int, str, str, int]]) -> None:
    """Writes (chain_index, prev_hash, hash) into the events (by id) whose chain fields are empty."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The application's role has no UPDATE on the table (manage.py setup_db_roles): this
            # SECURITY DEFINER function (audit migration 0006) fills empty chain fields, and the
            # append-only trigger still refuses anything else.
            indexes, prev_hashes, hashes, ids = (list(column) for column in zip(*updates, strict=True))
            cursor.execute("SELECT audit_seal_fill(%s, %s, %s, %s)", [ids, indexes, prev_hashes, hashes])
            return
        # Raw SQL: the ORM refuses every update of this table.
        table = connection.ops.quote_name(AuditEvent._meta.db_table)
        cursor.executemany(
            f"UPDATE {table} SET chain_index = %s, prev_hash = %s, hash = %s "  # noqa: S608
            "WHERE id = %s AND chain_index IS NULL",
            updates,
        )


def _publish_head(sealing: AuditSealing) -> None:
    """Writes the chain head outside the table: a log line and a line of the head file."""
    record = {
        "sealed_at": sealing.sealed_at.isoformat(),
        "chain_index": sealing.last_chain_index,
        "event_id": sealing.last_event_id,
        "hash": sealing.head_hash,
        "sealed": sealing.event_count,
    }
    logger.info(
        "audit chain head #%d = %s (event %d, %d sealed)",
        sealing.last_chain_index,
        sealing.head_hash,
        sealing.last_event_id,
        sealing.event_count,
        extra={"audit_chain_head": record},
    )
    path = head_file_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as file:
        file.write(json.dumps(record, sort_keys=True) + "\n")


def last_recorded_head() -> dict | None:
    """The last head written to the head file, or None when there is no file."""
    path = head_file_path()
    if not path.exists():
        return None
    last = None
    with path.open("rb") as file:
        # Read the tail only: the file grows by one line per sealing.
        file.seek(0, 2)
        size = file.tell()
        file.seek(max(0, size - 4096))
        lines = file.read().decode("utf-8", errors="replace").strip().splitlines()
        if lines:
            last = json.loads(lines[-1])
    return last


@dataclass
class VerificationResult:
    ok: bool
    checked: int
    first_broken_event_id: int | None = None
    message: str = ""


def audit_verify_chain(*, record: bool = True, archives: str = "latest") -> VerificationResult:
    """Walks the chain from the retention checkpoint; names the first event that does not hold.

    What retention removed is checked against its archives, which live outside the database:
    ``archives="latest"`` reads the archive of the latest checkpoint (the rows it holds must chain
    and hash, from the checkpoint before it up to the one the table continues from), ``"all"``
    every archive back to the first event, ``"none"`` skips them (archives moved off this host).
    Without that check, anyone able to delete rows with the retention flag and insert a checkpoint
    could remove recent events unnoticed.
    """
    result = _verify_archives(archives)
    if result.ok:
        table = _verify()
        result = VerificationResult(
            table.ok,
            table.checked,
            table.first_broken_event_id,
            table.message if not result.message else f"{table.message} {result.message}",
        )
    if record:
        AuditVerification.objects.create(
            ok=result.ok,
            checked=result.checked,
            first_broken_event_id=result.first_broken_event_id,
            message=result.message[:2000],
        )
    log = logger.info if result.ok else logger.error
    log("audit chain verification: %s", result.message)
    return result


def _verify() -> VerificationResult:
    checkpoint = AuditCheckpoint.objects.order_by("-id").first()
    expected_index = (checkpoint.last_chain_index if checkpoint else 0) + 1
    prev_hash = checkpoint.last_hash if checkpoint else GENESIS_HASH
    checked = 0
    hashes_at: dict[int, str] = {}
    heads = _expected_heads()
    rows = AuditEvent.objects.filter(chain_index__gte=expected_index)
    last_index = expected_index - 1
    while True:
        chunk = list(
            rows.filter(chain_index__gt=last_index).order_by("chain_index").values(*CHAIN_COLUMNS)[:_VERIFY_CHUNK]
        )
        if not chunk:
            break
        for row in chunk:
            name = f"event {row['id']} ({row['event_id']}, chain position {row['chain_index']})"
            if row["chain_index"] != expected_index:
                return VerificationResult(
                    False,
                    checked,
                    row["id"],
                    f"{name}: chain position {expected_index} is missing before it (an event was deleted).",
                )
            if row["prev_hash"] != prev_hash:
                return VerificationResult(
                    False,
                    checked,
                    row["id"],
                    f"{name}: prev_hash does not match the event before it (deleted, inserted or reordered).",
                )
            if link_hash(row, prev_hash) != row["hash"]:
                return VerificationResult(
                    False, checked, row["id"], f"{name}: content does not match its hash (the event was modified)."
                )
            if row["chain_index"] in heads:
                hashes_at[row["chain_index"]] = row["hash"]
            prev_hash = row["hash"]
            expected_index += 1
            checked += 1
        last_index = chunk[-1]["chain_index"]
    last_index = expected_index - 1
    for head_index, (head_hash, source) in sorted(heads.items()):
        if head_index <= (checkpoint.last_chain_index if checkpoint else 0):
            continue  # removed by retention
        if head_index > last_index:
            return VerificationResult(
                False,
                checked,
                None,
                f"the chain ends at position {last_index} but {source} recorded a head at position {head_index}: "
                "events at the end of the chain were deleted.",
            )
        if hashes_at.get(head_index) != head_hash:
            return VerificationResult(
                False,
                checked,
                None,
                f"the event at chain position {head_index} does not match the head {source} recorded "
                "(the table was rewritten).",
            )
    return VerificationResult(True, checked, None, f"{checked} sealed events verified; chain head #{last_index}.")


def _archive_path(name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else Path(settings.MEDIA_ROOT) / path


def _verify_archives(which: str) -> VerificationResult:
    """Checks the checkpoints against the archived rows they claim were removed (see above)."""
    if which not in ("latest", "all", "none"):
        raise ValueError(f"archives must be 'latest', 'all' or 'none', not {which!r}")
    checkpoints = list(AuditCheckpoint.objects.order_by("id").values_list("last_chain_index", "last_hash", "archive"))
    if which == "none" or not checkpoints:
        return VerificationResult(True, 0, None, "")
    # One archive per retention run; the checkpoints of its batches name it, in order.
    runs: list[tuple[str, list[tuple[int, str]]]] = []
    for index, row_hash, archive in checkpoints:
        if not runs or runs[-1][0] != archive:
            runs.append((archive, []))
        runs[-1][1].append((index, row_hash))
    first = 0 if which == "all" else len(runs) - 1
    start = (0, GENESIS_HASH) if first == 0 else runs[first - 1][1][-1]
    checked = 0
    for archive, marks in runs[first:]:
        path = _archive_path(archive)
        if not path.exists():
            return VerificationResult(
                False,
                checked,
                None,
                f"checkpoint #{marks[-1][0]} names the archive {archive}, which is not in the export storage: "
                "the removal of the events before it cannot be confirmed (verify with archives='none' if the "
                "archives were moved elsewhere on purpose).",
            )
        try:
            problem, count = _check_archive(path, archive, start, marks)
        except (
            OSError,
            EOFError,
            ValueError,
            KeyError,
            TypeError,
            AttributeError,
            csv.Error,
        ) as exc:  # unreadable, or an old format
            problem, count = f"the archive {archive} cannot be read ({exc.__class__.__name__}: {exc}).", 0
        checked += count
        if problem:
            return VerificationResult(False, checked, None, problem)
        start = marks[-1]
    return VerificationResult(True, checked, None, f"{checked} archived events verified.")


def _check_archive(path: Path, archive: str, start: tuple[int, str], marks: list[tuple[int, str]]) -> tuple[str, int]:
    """(what is wrong or "", rows checked): the archive's rows chain on from ``start``, hash right,
    and hold each checkpoint's position with the checkpoint's hash."""
    expected_index, prev_hash = start[0] + 1, start[1]
    wanted = dict(marks)
    checked = 0
    for row in read_archive(path):
        if row["chain_index"] > marks[-1][0]:
            break  # archived, but still in the table (a run interrupted before its last batch)
        name = f"archived event {row['id']} (chain position {row['chain_index']}, {archive})"
        if row["chain_index"] != expected_index or row["prev_hash"] != prev_hash:
            return f"{name} does not follow chain position {expected_index - 1}.", checked
        if link_hash(row, prev_hash) != row["hash"]:
            return f"{name}: content does not match its hash.", checked
        if wanted.pop(row["chain_index"], row["hash"]) != row["hash"]:
            return f"{name}: the checkpoint recorded another hash at its position.", checked
        prev_hash = row["hash"]
        expected_index += 1
        checked += 1
    if wanted:
        return (
            f"a checkpoint says chain position {min(wanted)} was removed, but {archive} does not hold it "
            "(events deleted outside retention).",
            checked,
        )
    return "", checked


def _expected_heads() -> dict[int, tuple[str, str]]:
    """Chain heads recorded outside the events: the latest sealing row and the head file."""
    heads: dict[int, tuple[str, str]] = {}
    latest = AuditSealing.objects.order_by("-id").first()
    if latest:
        heads[latest.last_chain_index] = (latest.head_hash, "the last sealing")
    recorded = last_recorded_head()
    if recorded:
        heads.setdefault(int(recorded["chain_index"]), (recorded["hash"], "the head file"))
        if heads[int(recorded["chain_index"])][0] != recorded["hash"]:
            heads[int(recorded["chain_index"])] = (recorded["hash"], "the head file")
    return heads
