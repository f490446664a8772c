"""Shapes of the audit API: the batch rows agents send, the query parameters, the events returned.

Batch rows are checked by ``parse_event_rows`` (plain Python: a batch of 1,000 rows must cost far
less than the insert); the DRF serializers below describe the same shapes for the OpenAPI schema
and parse the (small) query strings.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework import serializers

from agentplatform.errors import ValidationFailed
from agentplatform.query import MAX_OFFSET, QueryDateTimeField, QueryParameters
from audit.models import AuditEvent, Severity
from audit.selectors import EventFilters
from audit.services import ACTION_RE, SEVERITIES

MAX_BATCH_EVENTS = 1000
# An event may be stamped this far in the future (clock skew between an agent and the server).
MAX_CLOCK_SKEW = timedelta(minutes=5)
_ROW_FIELDS = {"event_id", "action", "resource_type", "resource_id", "severity", "success", "details", "occurred_at"}


def _contains_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_contains_nul(key) or _contains_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_contains_nul(item) for item in value)
    return False


# Rejection codes of a row (the first failing field's), as experiments' results and monitoring name theirs.
REQUIRED, INVALID, OUT_OF_RANGE, UNKNOWN_FIELD = "required", "invalid", "out_of_range", "unknown_field"


def _parse_row(row: Any, now: datetime) -> tuple[dict[str, Any], dict[str, list[str]], str]:
    """The clean row, the errors by field, and the code of the row's first error ("" when valid)."""
    errors: dict[str, list[str]] = {}
    codes: dict[str, str] = {}
    if not isinstance(row, dict):
        return {}, {"non_field_errors": ["Each event must be a JSON object."]}, INVALID
    unknown = set(row) - _ROW_FIELDS
    for name in sorted(unknown):
        message = "The actor is the authenticated caller; it cannot be set." if name.startswith("actor") else None
        errors[name] = [message or "Unknown field."]
        codes[name] = UNKNOWN_FIELD
    clean: dict[str, Any] = {}
    action = row.get("action")
    if not isinstance(action, str) or len(action) > 100 or not ACTION_RE.match(action):
        errors["action"] = ["Required: a dotted <entity>.<past_tense_verb> name, e.g. tool.called."]
        codes["action"] = REQUIRED if action is None else INVALID
    else:
        clean["action"] = action
    if "event_id" in row and row["event_id"] is not None:
        try:
            clean["event_id"] = uuid.UUID(str(row["event_id"]))
        except ValueError:
            errors["event_id"] = ["Must be a UUID."]
    for name, limit in (("resource_type", 64), ("resource_id", 128)):
        value = row.get(name, "")
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or len(value) > limit or "\x00" in value:
            errors[name] = [f"Must be a string of at most {limit} characters (no NUL)."]
        else:
            clean[name] = value
    severity = row.get("severity", "info")
    if severity not in SEVERITIES:
        errors["severity"] = [f"Must be one of {', '.join(SEVERITIES)}."]
    else:
        clean["severity"] = severity
    success = row.get("success", True)
    if not isinstance(success, bool):
        errors["success"] = ["Must be true or false."]
    else:
        clean["success"] = success
    details = row.get("details")
    if details is not None and not isinstance(details, dict):
        errors["details"] = ["Must be a JSON object."]
    elif details and _contains_nul(details):  # PostgreSQL text and jsonb cannot store U+0000
        errors["details"] = ["Must not contain NUL characters."]
    else:
        clean["details"] = details
    if row.get("occurred_at") is not None:
        moment = parse_datetime(row["occurred_at"]) if isinstance(row["occurred_at"], str) else None
        if moment is None or timezone.is_naive(moment):
            errors["occurred_at"] = ["Must be an ISO 8601 date-time with a time zone."]
        elif moment > now + MAX_CLOCK_SKEW:
            errors["occurred_at"] = ["Must not be in the future."]
            codes["occurred_at"] = OUT_OF_RANGE
        elif moment < now - timedelta(days=settings.AUDIT_RETENTION_DAYS):
            errors["occurred_at"] = ["Is older than the audit retention period."]
            codes["occurred_at"] = OUT_OF_RANGE
        else:
            clean["occurred_at"] = moment
    if not errors:
        return clean, errors, ""
    return clean, errors, codes.get(next(iter(errors)), INVALID)


def parse_event_rows(payload: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The valid rows of a batch (each with its ``index``) and the per-row errors.

    Each error is ``{"index", "errors": {field: [messages]}, "code", "field", "message"}``: the
    errors by field, and the first one as a code, field and message (the API answers the former as
    ``errors`` and the latter as ``rejected``). Raises ``ValidationFailed`` for a body that is not
    ``{"events": [1 to 1,000 items]}``.
    """
    events = payload.get("events") if isinstance(payload, dict) else None
    if not isinstance(events, list) or not 1 <= len(events) <= MAX_BATCH_EVENTS:
        raise ValidationFailed(f'The body must be {{"events": [...]}} with 1 to {MAX_BATCH_EVENTS} events.')
    now = timezone.now()
    valid, rejected = [], []
    for index, row in enumerate(events):
        clean, errors, code = _parse_row(row, now)
        if errors:
            field, messages = next(iter(errors.items()))
            rejected.append({"index": index, "errors": errors, "code": code, "field": field, "message": messages[0]})
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
    event_id = serializers.UUIDField(required=False, help_text="Idempotency key: a repeated id is stored once.")
    action = serializers.RegexField(ACTION_RE.pattern, max_length=100)
    resource_type = serializers.CharField(required=False, max_length=64, allow_blank=True)
    resource_id = serializers.CharField(required=False, max_length=128, allow_blank=True)
    severity = serializers.ChoiceField(SEVERITIES, default="info")
    success = serializers.BooleanField(default=True)
    details = serializers.DictField(required=False, help_text="Secrets are masked by key name; size-capped.")
    occurred_at = serializers.DateTimeField(required=False)


class AuditEventBatchInSerializer(serializers.Serializer):
    events = AuditEventInSerializer(many=True, min_length=1, max_length=MAX_BATCH_EVENTS)


class AuditRowErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))


class AuditRowRejectionSerializer(serializers.Serializer):
    """One refused row as every batch endpoint reports it: its first error as field, code, message."""

    index = serializers.IntegerField()
    field = serializers.CharField()
    code = serializers.ChoiceField(choices=[REQUIRED, INVALID, OUT_OF_RANGE, UNKNOWN_FIELD])
    message = serializers.CharField()


class AuditDuplicateSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    event_id = serializers.UUIDField()


class AuditEventBatchOutSerializer(serializers.Serializer):
    stored = serializers.IntegerField()
    duplicates = AuditDuplicateSerializer(many=True)
    errors = AuditRowErrorSerializer(many=True)
    # The shape experiments' results answer (accepted = stored; one entry per refused row).
    accepted = serializers.IntegerField()
    rejected = AuditRowRejectionSerializer(many=True)


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
