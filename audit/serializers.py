"""Shapes of the audit API: the batch rows agents send, the query parameters, the events returned.

Batch rows are checked by ``parse_event_rows`` (plain Python: a batch of 1,000 rows must cost far
less than the insert); the DRF serializers below describe the same shapes for the OpenAPI schema
and parse the (small) query strings.
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.validators import RegexValidator
from django.utils import timezone
from rest_framework import serializers

from agentplatform.ingest import (
    INVALID,
    NON_FIELD,
    OUT_OF_RANGE,
    REQUIRED,
    UNKNOWN_FIELD,
    RowRejection,
    batch_items,
    clean_text,
    parse_timestamp,
    timestamp_problem,
)
from agentplatform.query import MAX_OFFSET, QueryDateTimeField, QueryParameters
from agentplatform.strict_fields import (
    AwareDateTimeField,
    StrictBooleanField,
    StrictCharField,
    StrictChoiceField,
    StrictUUIDField,
)
from audit.models import AuditEvent, Severity
from audit.selectors import EventFilters
from audit.services import ACTION_RE, SEVERITIES

MAX_BATCH_EVENTS = 1000
_ROW_FIELDS = {"event_id", "action", "resource_type", "resource_id", "severity", "success", "details", "occurred_at"}


def _unstorable(value: Any) -> str | None:
    """Why a details value cannot be stored (a NUL or an unpaired surrogate in a key or string)."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        for key, item in value.items():
            problem = clean_text(key) or _unstorable(item)
            if problem:
                return problem
    elif isinstance(value, list):
        for item in value:
            problem = _unstorable(item)
            if problem:
                return problem
    elif isinstance(value, float) and not math.isfinite(value):
        return "Must hold finite numbers only."
    return None


def _parse_row(row: Any, now: datetime) -> tuple[dict[str, Any], dict[str, list[dict[str, str]]]]:
    """The clean row and its errors by field (each ``{"code", "message"}``; empty when valid)."""
    errors: dict[str, list[dict[str, str]]] = {}

    def refuse(name: str, message: str, code: str = INVALID) -> None:
        errors.setdefault(name, []).append({"code": code, "message": message})

    if not isinstance(row, dict):
        refuse(NON_FIELD, "Each event must be a JSON object.")
        return {}, errors
    for name in sorted(set(row) - _ROW_FIELDS, key=str):
        message = "The actor is the authenticated caller; it cannot be set." if name.startswith("actor") else None
        refuse(name[:100] if not clean_text(name) else "?", message or "Unknown field.", UNKNOWN_FIELD)
    clean: dict[str, Any] = {}
    action = row.get("action")
    if not isinstance(action, str) or len(action) > 100 or not ACTION_RE.match(action):
        refuse(
            "action",
            "Required: a dotted <entity>.<past_tense_verb> name, e.g. tool.called.",
            REQUIRED if action is None else INVALID,
        )
    else:
        clean["action"] = action
    if "event_id" in row and row["event_id"] is not None:
        event_id = row["event_id"]
        try:
            if not isinstance(event_id, str) or len(event_id) > 40:
                raise ValueError
            clean["event_id"] = uuid.UUID(event_id)
        except ValueError:
            refuse("event_id", "Must be a UUID.")
    for name, limit in (("resource_type", 64), ("resource_id", 128)):
        value = row.get(name, "")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**18:
            value = str(value)
        if not isinstance(value, str) or len(value) > limit or clean_text(value):
            refuse(name, f"Must be a string of at most {limit} characters (no NUL).")
        else:
            clean[name] = value
    severity = row.get("severity", "info")
    if not isinstance(severity, str) or severity not in SEVERITIES:
        refuse("severity", f"Must be one of {', '.join(SEVERITIES)}.")
    else:
        clean["severity"] = severity
    success = row.get("success", True)
    if not isinstance(success, bool):
        refuse("success", "Must be true or false.")
    else:
        clean["success"] = success
    details = row.get("details")
    if details is not None and not isinstance(details, dict):
        refuse("details", "Must be a JSON object.")
    elif details and (problem := _unstorable(details)):  # PostgreSQL text and jsonb cannot store U+0000
        refuse("details", problem)
    else:
        clean["details"] = details
    occurred_at = row.get("occurred_at")
    if occurred_at is not None:
        moment = parse_timestamp(occurred_at)
        if moment is None:
            refuse("occurred_at", "Must be an ISO 8601 date-time with a time zone.")
        elif problem := timestamp_problem(moment, now=now, oldest=now - timedelta(days=settings.AUDIT_RETENTION_DAYS)):
            refuse("occurred_at", problem, OUT_OF_RANGE)
        else:
            clean["occurred_at"] = moment
    return clean, errors


def parse_event_rows(payload: Any) -> tuple[list[dict[str, Any]], list[RowRejection]]:
    """The valid rows of a batch (each with its ``index``) and the refused ones.

    Raises ``ValidationFailed`` for a body that is not ``{"events": [1 to 1,000 items]}``.
    """
    events = batch_items(payload, key="events", maximum=MAX_BATCH_EVENTS)
    now = timezone.now()
    valid, rejected = [], []
    for index, row in enumerate(events):
        clean, errors = _parse_row(row, now)
        if errors:
            rejected.append(RowRejection(index, errors))
        else:
            clean["index"] = index
            valid.append(clean)
    return valid, rejected


def event_to_dict(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.pk,
        "event_id": str(event.event_id),
        "occurred_at": event.occurred_at,
        "recorded_at": event.recorded_at,
        "actor": event.actor_label,
        "action": event.action,
        "resource_type": event.resource_type,
        "resource_id": event.resource_id,
        "severity": Severity(event.severity).label,
        "success": event.success,
        "request_id": event.request_id,
        "ip": event.ip,
        "user_agent": event.user_agent,
        "details": event.details,
        "sealed": bool(event.hash),
    }


# --- Schema and query-string serializers ---------------------------------------------------------


class AuditEventInSerializer(serializers.Serializer):
    """One batch row, for the schema (``parse_event_rows`` validates; the parity test keeps them equal)."""

    event_id = StrictUUIDField(
        required=False, allow_null=True, help_text="Idempotency key: a repeated id is stored once."
    )
    action = StrictCharField(max_length=100, validators=[RegexValidator(ACTION_RE)])
    resource_type = StrictCharField(required=False, max_length=64, allow_blank=True, integers=True)
    resource_id = StrictCharField(required=False, max_length=128, allow_blank=True, integers=True)
    severity = StrictChoiceField(SEVERITIES, default="info")
    success = StrictBooleanField(default=True)
    details = serializers.DictField(
        required=False, allow_null=True, help_text="Secrets are masked by key name; size-capped."
    )
    occurred_at = AwareDateTimeField(required=False, allow_null=True, retention_days="AUDIT_RETENTION_DAYS")

    def validate_details(self, details):
        problem = _unstorable(details) if details else None
        if problem:
            raise serializers.ValidationError(problem)
        return details

    def validate(self, attrs):
        unknown = set(self.initial_data) - _ROW_FIELDS if isinstance(self.initial_data, dict) else set()
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in sorted(unknown, key=str)})
        return attrs


class AuditEventBatchInSerializer(serializers.Serializer):
    events = AuditEventInSerializer(many=True, min_length=1, max_length=MAX_BATCH_EVENTS)


class AuditEventOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    event_id = serializers.UUIDField()
    occurred_at = serializers.DateTimeField()
    recorded_at = serializers.DateTimeField()
    actor = serializers.CharField()
    action = serializers.CharField()
    resource_type = serializers.CharField()
    resource_id = serializers.CharField()
    severity = serializers.ChoiceField(SEVERITIES)
    success = serializers.BooleanField()
    request_id = serializers.CharField()
    ip = serializers.IPAddressField(allow_null=True)
    user_agent = serializers.CharField()
    details = serializers.DictField()
    sealed = serializers.BooleanField()


class AuditEventPageSerializer(serializers.Serializer):
    results = AuditEventOutSerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True)


class AuditEventQuerySerializer(QueryParameters):
    actor = serializers.CharField(required=False, max_length=150)
    action = serializers.RegexField(
        r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*(\.\*)?$",
        required=False,
        max_length=100,
        help_text="Exact action, or a prefix ending in .* (experiment.*).",
    )
    severity = serializers.ChoiceField(SEVERITIES, required=False, help_text="At least this severity.")
    success = serializers.BooleanField(required=False, allow_null=True, default=None)
    resource_type = serializers.CharField(required=False, max_length=64)
    resource_id = serializers.CharField(required=False, max_length=128)
    since = QueryDateTimeField(required=False)
    until = QueryDateTimeField(required=False)
    cursor = serializers.CharField(required=False, max_length=200)
    page_size = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_OFFSET, help_text="Capped at AUDIT_MAX_PAGE_SIZE."
    )

    def filters(self) -> EventFilters:
        data = self.validated_data
        severity = data.get("severity")
        return EventFilters(
            actor=data.get("actor"),
            action=data.get("action"),
            min_severity=int(Severity.from_name(severity)) if severity else None,
            success=data.get("success"),
            resource_type=data.get("resource_type"),
            resource_id=data.get("resource_id"),
            since=data.get("since"),
            until=data.get("until"),
        )

    def limit(self) -> int:
        return min(self.validated_data.get("page_size") or settings.AUDIT_PAGE_SIZE, settings.AUDIT_MAX_PAGE_SIZE)


class AuditStatsQuerySerializer(QueryParameters):
    since = QueryDateTimeField(required=False, help_text="Default: 24 hours before until.")
    until = QueryDateTimeField(required=False, help_text="Default: now.")

    def validate(self, attrs):
        until = attrs.get("until") or timezone.now()
        since = attrs.get("since") or until - timedelta(hours=24)
        if since >= until:
            raise serializers.ValidationError("since must be before until.")
        return {"since": since, "until": until}


class AuditCountSerializer(serializers.Serializer):
    value = serializers.CharField()
    count = serializers.IntegerField()


class AuditStatsSerializer(serializers.Serializer):
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    total = serializers.IntegerField()
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField()
    success_rate = serializers.FloatField(allow_null=True)
    by_action = AuditCountSerializer(many=True)
    by_severity = serializers.DictField(child=serializers.IntegerField())
    by_actor = AuditCountSerializer(many=True)
