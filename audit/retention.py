"""Retention (archive, then delete the oldest sealed events) and period exports to files.

Retention removes a *prefix of the chain*: the sealed events before the first one recorded within
``AUDIT_RETENTION_DAYS``. They are written to a gzipped CSV under the export directory first (an
``AuditExport`` of kind ``archive`` with its chain range); then deleted in batches of
``AUDIT_RETENTION_BATCH_SIZE``, each in its own short transaction that records an
``AuditCheckpoint`` (last chain position and hash removed) in the same commit, so verification
starts right after whatever was removed, even if the job is interrupted halfway.

On PostgreSQL each batch is one call of ``audit_retention_delete(archive_id, batch_size)``, a
``SECURITY DEFINER`` function owned by the role that ran the migrations (audit migration 0006): the
application's role has no DELETE on the audit tables (``manage.py setup_db_roles``), and the
function deletes only archived events older than its pinned minimum age, setting the
transaction-local ``audit.retention_delete`` flag the append-only trigger checks and writing the
checkpoint itself. Elsewhere (SQLite) the job deletes and checkpoints directly.
"""

from __future__ import annotations

import csv
import gzip
import json
import logging
import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from agentplatform.exports import restore_cell, write_csv
from audit.models import AuditCheckpoint, AuditEvent, AuditExport, Severity

logger = logging.getLogger("audit")

EXPORT_COLUMNS = (
    "id",
    "event_id",
    "occurred_at",
    "recorded_at",
    "actor_id",
    "actor_label",
    "action",
    "severity",
    "success",
    "resource_type",
    "resource_id",
    "request_id",
    "ip",
    "user_agent",
    "details",
    "chain_index",
    "prev_hash",
    "hash",
)
_SEVERITY_AT = EXPORT_COLUMNS.index("severity")


def export_cells(row: tuple) -> list:
    """A ``values_list(*EXPORT_COLUMNS)`` row as CSV cells (severity by name)."""
    cells = list(row)
    cells[_SEVERITY_AT] = Severity(cells[_SEVERITY_AT]).label
    return cells


def read_archive(path: Path) -> Iterator[dict[str, Any]]:
    """The events of a retention archive, as the ``CHAIN_COLUMNS`` values they were sealed with.

    The inverse of ``export_cells`` and ``csv_safe``: text cells lose the apostrophe the export
    added, numbers, booleans, times, severities and details get their types back, so the chain's
    hashes can be recomputed from the file alone.
    """
    csv.field_size_limit(max(csv.field_size_limit(), 8 * settings.AUDIT_DETAILS_MAX_BYTES))
    with gzip.open(path, "rt", encoding="utf-8", newline="") as file:
        reader = csv.DictReader(file)
        if "actor_id" not in (reader.fieldnames or ()):
            raise ValueError("the archive predates the verifiable format (no actor_id column): use --archives none")
        for cells in reader:
            text = {name: restore_cell(cells[name]) for name in _TEXT_COLUMNS}
            yield {
                **text,
                "id": int(cells["id"]),
                "event_id": cells["event_id"],
                "chain_index": int(cells["chain_index"]),
                "occurred_at": datetime.fromisoformat(cells["occurred_at"]),
                "recorded_at": datetime.fromisoformat(cells["recorded_at"]),
                "actor_id": int(cells["actor_id"]) if cells["actor_id"] else None,
                "severity": int(Severity.from_name(cells["severity"])),
                "success": cells["success"] == "true",
                "ip": restore_cell(cells["ip"]) or None,
                "details": json.loads(restore_cell(cells["details"])),
            }


_TEXT_COLUMNS = (
    "actor_label",
    "action",
    "resource_type",
    "resource_id",
    "request_id",
    "user_agent",
    "prev_hash",
    "hash",
)


def export_dir() -> Path:
    return Path(settings.AUDIT_EXPORT_DIR) / "audit"


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(settings.MEDIA_ROOT))
    except ValueError:
        return str(path)


def _write_file(path: Path, queryset, *, compress: bool) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    opener = gzip.open if compress else open
    with opener(partial, "wt", encoding="utf-8", newline="") as file:
        count = write_csv(file, queryset.values_list(*EXPORT_COLUMNS), EXPORT_COLUMNS, row_to_cells=export_cells)
        file.flush()
    with open(partial, "rb") as raw:
        os.fsync(raw.fileno())
    # Appears under its final name only when complete: a crash leaves a .partial, never a short file.
    partial.replace(path)
    return count


def audit_retention_run(*, now: datetime | None = None) -> int:
    """Archives then deletes sealed events older than ``AUDIT_RETENTION_DAYS``; returns how many."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.AUDIT_RETENTION_DAYS)
    checkpoint = AuditCheckpoint.objects.order_by("-id").first()
    start = checkpoint.last_chain_index if checkpoint else 0
    sealed = AuditEvent.objects.filter(chain_index__gt=start)
    first_kept = (
        sealed.filter(recorded_at__gte=cutoff).order_by("chain_index").values_list("chain_index", flat=True).first()
    )
    if first_kept is not None:
        end = first_kept - 1
    else:
        end = sealed.order_by("-chain_index").values_list("chain_index", flat=True).first() or start
    if end <= start:
        return 0
    doomed = AuditEvent.objects.filter(chain_index__gt=start, chain_index__lte=end).order_by("chain_index")
    path = export_dir() / f"archive-{start + 1:012d}-{end:012d}-{now:%Y%m%dT%H%M%S}.csv.gz"
    archived = _write_file(path, doomed, compress=True)
    first_time, last_time = (
        doomed.values_list("recorded_at", flat=True).first(),
        doomed.reverse().values_list("recorded_at", flat=True).first(),
    )
    archive = AuditExport.objects.create(
        kind="archive",
        period_start=first_time,
        period_end=last_time,
        path=_relative(path),
        row_count=archived,
        size_bytes=path.stat().st_size,
        first_chain_index=start + 1,
        last_chain_index=end,
    )
    if connection.vendor == "postgresql":
        deleted = _delete_through_function(archive)
    else:
        deleted = _delete_prefix(start=start, end=end, archive=archive.path)
    logger.info("audit retention: archived %d and deleted %d events to %s", archived, deleted, path)
    from audit.services import audit_log

    audit_log(
        actor="system:audit_retention",
        action="audit.retention_completed",
        resource_type="audit_archive",
        resource_id=_relative(path),
        details={"deleted": deleted, "archived": archived, "cutoff": cutoff, "through_chain_index": end},
    )
    return deleted


def _delete_through_function(archive: AuditExport) -> int:
    """PostgreSQL: one ``audit_retention_delete`` call (deletes and checkpoints) per transaction."""
    deleted = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT audit_retention_delete(%s, %s)", [archive.pk, settings.AUDIT_RETENTION_BATCH_SIZE])
            batch = cursor.fetchone()[0]
        if not batch:
            return deleted
        deleted += batch


def _delete_prefix(*, start: int, end: int, archive: str) -> int:
    """Other databases (no roles, no trigger): delete each batch and write its checkpoint."""
    table = connection.ops.quote_name(AuditEvent._meta.db_table)
    batch_size = settings.AUDIT_RETENTION_BATCH_SIZE
    deleted = 0
    current = start
    while current < end:
        with transaction.atomic():
            batch = list(
                AuditEvent.objects.filter(chain_index__gt=current, chain_index__lte=end)
                .order_by("chain_index")
                .values_list("id", "chain_index", "hash")[:batch_size]
            )
            if not batch:
                break
            with connection.cursor() as cursor:
                ids = [row[0] for row in batch]
                placeholders = ", ".join(["%s"] * len(ids))
                cursor.execute(f"DELETE FROM {table} WHERE id IN ({placeholders})", ids)  # noqa: S608
            AuditCheckpoint.objects.create(
                last_chain_index=batch[-1][1], last_hash=batch[-1][2], deleted_count=len(batch), archive=archive
            )
        deleted += len(batch)
        current = batch[-1][1]
    return deleted


def audit_export_period(*, start: datetime, end: datetime) -> AuditExport:
    """Writes events that occurred in [start, end) to a CSV file listed in the admin."""
    if end <= start:
        from agentplatform.errors import ValidationFailed

        raise ValidationFailed("The export period must end after it starts.")
    events = AuditEvent.objects.filter(occurred_at__gte=start, occurred_at__lt=end).order_by("occurred_at", "id")
    stamp = timezone.now()
    path = export_dir() / f"events-{start:%Y%m%dT%H%M%S}-{end:%Y%m%dT%H%M%S}-{stamp:%Y%m%dT%H%M%S%f}.csv"
    count = _write_file(path, events, compress=False)
    export = AuditExport.objects.create(
        kind="export",
        period_start=start,
        period_end=end,
        path=_relative(path),
        row_count=count,
        size_bytes=path.stat().st_size,
    )
    from audit.services import audit_log

    audit_log(
        actor="system:audit_export",
        action="audit.exported",
        resource_type="audit_export",
        resource_id=export.pk,
        details={"start": start, "end": end, "rows": count, "path": export.path},
    )
    return export
