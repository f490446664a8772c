"""Reads of the audit log: who may see what, filtered keyset pages, and statistics in SQL."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.db.models import Count, F, Q, QuerySet

# Django 5.2's tuple lookups (the machinery of composite primary keys): a native row comparison
# "(occurred_at, id) < (%s, %s)" on PostgreSQL, which the (occurred_at, id) index serves directly;
# the expanded "a < x OR (a = x AND b < y)" form on other databases.
from django.db.models.fields.tuple_lookups import Tuple, TupleLessThan
from django.utils.dateparse import parse_datetime

from agentplatform.errors import ValidationFailed
from audit.models import AuditEvent, Severity

# Rows in each "counts by" list of the statistics: the busiest first, the tail summed as "other".
STATS_TOP = 100


def audit_events_visible_to(*, user) -> QuerySet[AuditEvent]:
    """Every event for readers of the whole log; only the caller's own events for anyone else (agents)."""
    events = AuditEvent.objects.all()
    if user.has_perm("audit.view_auditevent"):
        return events
    return events.filter(actor_id=user.pk)


@dataclass(frozen=True)
class EventFilters:
    actor: str | None = None
    action: str | None = None  # exact, or a prefix written "experiment.*"
    min_severity: int | None = None
    success: bool | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive


def audit_events_filter(events: QuerySet[AuditEvent], filters: EventFilters) -> QuerySet[AuditEvent]:
    """``events`` narrowed by ``filters``; each condition matches an index prefix."""
    if filters.actor:
        events = events.filter(actor_label=filters.actor)
    if filters.action:
        if filters.action.endswith("*"):
            events = events.filter(action__startswith=filters.action[:-1])
        else:
            events = events.filter(action=filters.action)
    if filters.min_severity is not None:
        events = events.filter(severity__gte=filters.min_severity)
    if filters.success is not None:
        events = events.filter(success=filters.success)
    if filters.resource_type:
        events = events.filter(resource_type=filters.resource_type)
    if filters.resource_id:
        events = events.filter(resource_id=filters.resource_id)
    if filters.since:
        events = events.filter(occurred_at__gte=filters.since)
    if filters.until:
        events = events.filter(occurred_at__lt=filters.until)
    return events


def encode_cursor(event: AuditEvent) -> str:
    raw = json.dumps([event.occurred_at.isoformat(), event.pk], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        occurred, pk = json.loads(raw)
        moment = parse_datetime(occurred)
        if moment is None or not isinstance(pk, int):
            raise ValueError
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError):
        raise ValidationFailed("The cursor is not one this API returned.", details={"cursor": cursor[:100]}) from None
    return moment, pk


def audit_event_page(
    *, user, filters: EventFilters, cursor: str | None, limit: int
) -> tuple[list[AuditEvent], str | None]:
    """One page, newest first, after ``cursor``; and the cursor of the next page (None at the end).

    Keyset pagination on the unique (occurred_at, id): a page never repeats or skips an event that
    existed when the first page was read, however many events arrive meanwhile (those land on
    the pages already read, or on later pages if they occurred earlier, never shift a page).
    """
    events = audit_events_filter(audit_events_visible_to(user=user), filters)
    if cursor:
        occurred_at, pk = decode_cursor(cursor)
        events = events.filter(TupleLessThan(Tuple(F("occurred_at"), F("id")), (occurred_at, pk)))
    rows = list(events.order_by("-occurred_at", "-id")[: limit + 1])
    if len(rows) > limit:
        return rows[:limit], encode_cursor(rows[limit - 1])
    return rows, None


def _counts(events: QuerySet, field: str, *, labels=None) -> list[dict]:
    rows = list(events.values(field).annotate(count=Count("id")).order_by("-count", field)[: STATS_TOP + 1])
    result = [{"value": labels(row[field]) if labels else row[field], "count": row["count"]} for row in rows]
    if len(result) > STATS_TOP:
        # The tail, counted in SQL too: the total minus the listed ones.
        listed = sum(item["count"] for item in result[:STATS_TOP])
        total = events.count()
        result = [*result[:STATS_TOP], {"value": "(other)", "count": total - listed}]
    return result


def audit_stats(*, user, since: datetime, until: datetime) -> dict:
    """Counts by action, severity and actor, successes, failures and success rate in [since, until)."""
    events = audit_events_filter(audit_events_visible_to(user=user), EventFilters(since=since, until=until))
    totals = events.aggregate(
        total=Count("id"),
        succeeded=Count("id", filter=Q(success=True)),
        failed=Count("id", filter=Q(success=False)),
    )
    by_severity = {member.label: 0 for member in Severity}
    for row in events.values("severity").annotate(count=Count("id")).order_by():
        by_severity[Severity(row["severity"]).label] = row["count"]
    return {
        "since": since,
        "until": until,
        "total": totals["total"],
        "succeeded": totals["succeeded"],
        "failed": totals["failed"],
        "success_rate": (totals["succeeded"] / totals["total"]) if totals["total"] else None,
        "by_action": _counts(events, "action"),
        "by_severity": by_severity,
        "by_actor": _counts(events, "actor_label"),
    }


# Unsealed events counted exactly by the status; past it, "at least this many".
AWAITING_SEAL_CAP = 100_000


def audit_chain_status() -> dict:
    """Last sealing, last verification and the number of events awaiting sealing (for /readyz)."""
    from audit.models import AuditSealing, AuditVerification

    sealing = AuditSealing.objects.order_by("-id").first()
    verification = AuditVerification.objects.order_by("-id").first()
    awaiting = AuditEvent.objects.filter(chain_index__isnull=True).order_by()[: AWAITING_SEAL_CAP + 1].count()
    return {
        "last_sealed_at": sealing.sealed_at.isoformat() if sealing else None,
        "chain_head": sealing.last_chain_index if sealing else None,
        # Counted through the partial index of unsealed rows, and only up to a cap: probes call this
        # every few seconds, and a stalled sealer leaves millions.
        "awaiting_seal": min(awaiting, AWAITING_SEAL_CAP),
        "awaiting_seal_capped": awaiting > AWAITING_SEAL_CAP,
        "last_verification": (
            {"at": verification.verified_at.isoformat(), "ok": verification.ok, "message": verification.message[:200]}
            if verification
            else None
        ),
        "database_role": audit_database_role(),
    }


def audit_database_role() -> dict | None:
    """The database role this process connects as, and whether it is the least-privilege one: no
    UPDATE, DELETE or TRUNCATE on the audit log (an owner or superuser has them all). PostgreSQL only."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_user, has_table_privilege('audit_auditevent', 'UPDATE') "
            "OR has_table_privilege('audit_auditevent', 'DELETE') "
            "OR has_table_privilege('audit_auditevent', 'TRUNCATE')"
        )
        name, can_rewrite = cursor.fetchone()
    return {"name": name, "least_privilege": not can_rewrite}
