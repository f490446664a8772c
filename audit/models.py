"""The audit log: append-only events sealed into a SHA-256 hash chain, and the chain's bookkeeping.

``AuditEvent`` rows are written once (``audit.services.audit_log`` and the batch API) and never
changed, except for the sealer's one-time fill of the empty chain fields; the ORM refuses updates
and deletes here, and on PostgreSQL a trigger (migration 0002) refuses them in the database too.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from agentplatform.errors import Conflict
from agentplatform.ids import uuid7


class AppendOnlyViolation(Conflict):
    code = "audit_append_only"
    default_message = "Audit events and retention checkpoints are append-only: they cannot be changed or deleted."


class Severity(models.IntegerChoices):
    # Numbers, not names, so "severity at least warning" is one indexed comparison.
    DEBUG = 10, "debug"
    INFO = 20, "info"
    WARNING = 30, "warning"
    ERROR = 40, "error"
    CRITICAL = 50, "critical"

    @classmethod
    def from_name(cls, name: str) -> Severity:
        for member in cls:
            if member.label == name:
                return member
        raise ValueError(f"unknown severity {name!r}; expected one of {', '.join(m.label for m in cls)}")


class AppendOnlyQuerySet(models.QuerySet):
    """Refuses every bulk change: the only writes are inserts (and the sealer's raw chain fill)."""

    def update(self, **kwargs):
        raise AppendOnlyViolation()

    def delete(self):
        raise AppendOnlyViolation()

    def bulk_update(self, objs, fields, batch_size=None):
        raise AppendOnlyViolation()

    def update_or_create(self, defaults=None, create_defaults=None, **kwargs):
        raise AppendOnlyViolation()

    def _raw_delete(self, using):
        raise AppendOnlyViolation()

    def bulk_create(self, objs, batch_size=None, ignore_conflicts=False, update_conflicts=False, *args, **kwargs):
        if update_conflicts:  # INSERT ... ON CONFLICT DO UPDATE: an update by another name
            raise AppendOnlyViolation()
        return super().bulk_create(objs, batch_size, ignore_conflicts, False, *args, **kwargs)


class AppendOnlyModel(models.Model):
    """A row written once: ``save()`` only inserts, ``delete()`` and the bulk changes are refused."""

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, force_update=False, update_fields=None, **kwargs):
        if not self._state.adding or force_update or update_fields is not None:
            raise AppendOnlyViolation()
        # Always an INSERT: a new instance given the primary key of a stored row would otherwise
        # be saved as an UPDATE of it (Django tries UPDATE first when the pk is set); this way the
        # database refuses it as a duplicate key.
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyViolation()


class AuditEvent(AppendOnlyModel):
    """One thing that happened: who did what to which resource, when, and whether it worked."""

    event_id = models.UUIDField(unique=True, default=uuid7, editable=False)
    occurred_at = models.DateTimeField(default=timezone.now)
    recorded_at = models.DateTimeField(default=timezone.now)
    # No database constraint: users are deactivated, not deleted, and a cascade or SET NULL would
    # be an UPDATE/DELETE of the log itself. actor_label keeps the name whatever happens to the user.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    actor_label = models.CharField(max_length=150)
    action = models.CharField(max_length=100)
    resource_type = models.CharField(max_length=64, blank=True, default="")
    resource_id = models.CharField(max_length=128, blank=True, default="")
    severity = models.PositiveSmallIntegerField(choices=Severity.choices, default=Severity.INFO)
    success = models.BooleanField(default=True)
    request_id = models.CharField(max_length=128, blank=True, default="")
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True, default="")
    details = models.JSONField(default=dict, blank=True)
    # Hash chain, filled once by the sealer: position in the chain, the previous event's hash, and
    # SHA-256 over this event's canonical content and prev_hash (audit/chain.py).
    chain_index = models.BigIntegerField(null=True, blank=True, editable=False)  # unique: Meta.constraints
    prev_hash = models.CharField(max_length=64, blank=True, default="", editable=False)
    hash = models.CharField(max_length=64, blank=True, default="", editable=False)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        permissions = [
            ("view_own_auditevent", "Can read audit events (agents: only their own)"),
            ("export_auditevent", "Can export audit events as CSV"),
        ]
        indexes = [
            # Newest first, and the keyset cursor (occurred_at, id) of every listing.
            models.Index(fields=["-occurred_at", "-id"], name="audit_time_idx"),
            # "actor X did action Y on day Z" and "everything actor X did", newest first.
            models.Index(fields=["actor_label", "action", "-occurred_at", "-id"], name="audit_actor_idx"),
            # Action exact or prefix: LIKE 'experiment.%' uses a B-tree only with pattern operators
            # under a non-C collation, and those serve equality too, so one index does both
            # (other databases ignore opclasses).
            models.Index(
                fields=["action", "-occurred_at"], name="audit_action_idx", opclasses=["varchar_pattern_ops", ""]
            ),
            # Agents reading their own events. Partial, like the resource index: events of the
            # system (no user) and events about no resource are never looked up by these keys,
            # and leaving them out spares each such insert an index entry (a query's
            # "actor_id = 5" or "resource_type = 'experiment'" implies the condition).
            models.Index(
                fields=["actor", "-occurred_at", "-id"],
                name="audit_actor_id_idx",
                condition=Q(actor__isnull=False),
            ),
            models.Index(
                fields=["resource_type", "resource_id", "-occurred_at"],
                name="audit_resource_idx",
                condition=~Q(resource_type=""),
            ),
            models.Index(fields=["request_id"], name="audit_request_idx"),
            # What the sealer has left to do: small, because sealed rows leave it.
            models.Index(fields=["id"], condition=Q(chain_index__isnull=True), name="audit_unsealed_idx"),
        ]
        constraints = [
            # One event per chain position. Partial: an event enters it when sealed, not as a NULL
            # entry on insert (every reader of the chain asks for positions, never for NULL).
            models.UniqueConstraint(
                fields=["chain_index"], condition=Q(chain_index__isnull=False), name="audit_chain_index_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor_label} at {self.occurred_at:%Y-%m-%d %H:%M:%S}"

    @property
    def severity_name(self) -> str:
        return Severity(self.severity).label


class AuditSealing(models.Model):
    """One run of the sealer that sealed something: the chain head it left (also logged and filed)."""

    sealed_at = models.DateTimeField(default=timezone.now, db_index=True)
    event_count = models.PositiveIntegerField()
    first_chain_index = models.BigIntegerField()
    last_chain_index = models.BigIntegerField()
    last_event_id = models.BigIntegerField()
    head_hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["-sealed_at", "-id"]
        get_latest_by = "id"

    def __str__(self) -> str:
        return f"sealed {self.event_count} up to #{self.last_chain_index} at {self.sealed_at:%Y-%m-%d %H:%M:%S}"


class AuditVerification(models.Model):
    """One run of ``verify_audit``: whether the chain held, and the first broken event if not."""

    verified_at = models.DateTimeField(default=timezone.now, db_index=True)
    ok = models.BooleanField()
    checked = models.BigIntegerField(default=0)
    first_broken_event_id = models.BigIntegerField(null=True, blank=True)
    message = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-verified_at", "-id"]
        get_latest_by = "id"

    def __str__(self) -> str:
        return f"{'ok' if self.ok else 'BROKEN'} at {self.verified_at:%Y-%m-%d %H:%M:%S}"


class AuditCheckpoint(AppendOnlyModel):
    """What retention removed from the start of the chain, so verification can start after it.

    Written in the same transaction as each deleted batch: the latest row names the last chain
    position and hash removed, which the first remaining event's ``prev_hash`` must equal.
    """

    created_at = models.DateTimeField(default=timezone.now)
    last_chain_index = models.BigIntegerField()
    last_hash = models.CharField(max_length=64)
    deleted_count = models.BigIntegerField()
    archive = models.CharField(max_length=255, help_text="Archive file (relative to MEDIA_ROOT) holding the rows.")

    class Meta:
        ordering = ["-id"]
        get_latest_by = "id"

    def __str__(self) -> str:
        return f"removed up to #{self.last_chain_index}"


class AuditExport(models.Model):
    """A CSV file of audit events written by the export job, downloadable from the admin."""

    created_at = models.DateTimeField(default=timezone.now)
    kind = models.CharField(max_length=16, choices=[("export", "export"), ("archive", "retention archive")])
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    path = models.CharField(max_length=255, help_text="Relative to MEDIA_ROOT.")
    row_count = models.BigIntegerField(default=0)
    size_bytes = models.BigIntegerField(default=0)
    # A retention archive's chain positions: the database's retention function deletes only these.
    first_chain_index = models.BigIntegerField(null=True, blank=True)
    last_chain_index = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.path
