"""Writes to the audit log.

``audit_log`` is the one call every state-changing service uses (services, views, tasks, signals).
It builds the event in memory and hands it to the buffer of the current scope (``audit/writer.py``):
the request, task or ``audit.writer.audit_buffer()`` block bulk-inserts its events when it ends.
Events of a transaction that rolls back are dropped, unless ``durable=True`` (failed logins,
permission denials), which are written whatever the transaction's outcome.

The chain's services live in ``audit.integrity`` (``audit_seal_pending``, ``audit_verify_chain``),
retention and exports in ``audit.retention`` (``audit_retention_run``, ``audit_export_period``).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import c_make_encoder, encode_basestring
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from agentplatform.cached_settings import CachedSetting
from agentplatform.client_ip import get_client_ip
from agentplatform.errors import ValidationFailed
from agentplatform.ids import uuid7
from agentplatform.ingest import IngestResult
from agentplatform.request_id import get_request_id
from audit.models import Severity
from audit.writer import PendingEvent, enqueue, insert_events

__all__ = [
    "SEVERITIES",
    "audit_events_ingest",
    "audit_log",
    "build_event",
    "mask_secrets",
]

logger = logging.getLogger("audit")

SEVERITIES = tuple(member.label for member in Severity)
ACTION_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
MASK = "***"
# Key names whose values never reach the log, matched case-insensitively as substrings of the key
# with "-" and " " read as "_" ("X-Api-Key", "db_password", "refresh_token", "Authorization").
SECRET_KEY_PARTS = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
    "session",
    "private_key",
    "credential",
    "signature",
)
_MAX_DEPTH = 8
_SCALARS = frozenset({str, int, float, bool, type(None)})


_SECRET_KEY_RE = re.compile("|".join(re.escape(part) for part in SECRET_KEY_PARTS))


# Agents send the same few keys in every event: the answer for a key is remembered (typed, so the
# keys 1 and True are told apart; bounded, so a caller inventing keys only churns the cache).
@functools.lru_cache(maxsize=4096, typed=True)
def _is_secret_key(key: str) -> bool:
    normalised = str(key).lower().replace("-", "_").replace(" ", "_")
    return _SECRET_KEY_RE.search(normalised) is not None


def _mask(value: Any, depth: int = 0) -> Any:
    if depth > _MAX_DEPTH:
        return "[nested too deep]"
    # type() checks first: isinstance() against the Mapping ABC costs a microsecond per value.
    if type(value) in _SCALARS:
        return value
    if type(value) is dict or isinstance(value, Mapping):
        # A scalar value is taken as is here rather than in a call of its own (most values are),
        # except one level past the depth limit, where _mask replaces it like any other value.
        inline = depth < _MAX_DEPTH
        return {
            str(k): MASK if _is_secret_key(k) else v if inline and type(v) in _SCALARS else _mask(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_mask(item, depth + 1) for item in value]
    return value


def mask_secrets(value: Any) -> Any:
    """``value`` with the values of secret-looking keys (``SECRET_KEY_PARTS``) replaced by ``MASK``,
    at any depth up to the audit log's limit: the masking of audit details, for other stored JSON."""
    return _mask(value)


def _not_json(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# Compact, UTF-8 as is. JSONEncoder.encode() builds its C encoder anew on every call (two thirds
# of its cost for a small dict): the C encoder is made once here, with the options encode() would
# pass it, except allow_nan: NaN and infinities raise ValueError (jsonb has no form for them; see
# _jsonable). No cycle check (markers=None): _mask returns a fresh tree no deeper than _MAX_DEPTH.
if c_make_encoder is not None:
    _encode_chunks = c_make_encoder(None, _not_json, encode_basestring, None, ":", ",", False, False, False)

    def _json_text(value: Any) -> str:
        return "".join(_encode_chunks(value, 0))

else:  # an interpreter without the C accelerator
    _json_text = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode

# Read on every event with details.
_details_limit = CachedSetting(["AUDIT_DETAILS_MAX_BYTES"], lambda: settings.AUDIT_DETAILS_MAX_BYTES)


def _details_and_json(details: Mapping[str, Any] | None) -> tuple[dict[str, Any], str]:
    """``details`` as plain JSON with secrets masked by key name and the size capped, and its text.

    Past ``AUDIT_DETAILS_MAX_BYTES`` (UTF-8 of the compact JSON) the details are replaced by a
    marker with the original size and a truncated preview: an event is never refused for its size.
    """
    if not details:
        return {}, "{}"
    if type(details) is not dict and not isinstance(details, Mapping):
        details = {"value": details}
    masked = _mask(details)
    try:
        text = _json_text(masked)  # JSON values only: the common case, one C call
    except (TypeError, ValueError):
        masked = _jsonable(masked)  # now JSON values only: what the text says, the value holds
        text = _json_text(masked)
    limit = _details_limit()
    if len(text) * 4 > limit and len(encoded := text.encode("utf-8")) > limit:
        preview = encoded[: max(0, limit // 2)].decode("utf-8", errors="ignore")
        capped = {"_truncated": True, "_original_bytes": len(encoded), "_preview": preview}
        return capped, _json_text(capped)
    return masked, text


def _jsonable(value: Any) -> Any:
    """``value`` (masked) with what JSON has no form for turned into strings.

    Datetimes, dates, times, durations, Decimals, UUIDs and lazy strings as ``DjangoJSONEncoder``
    writes them; NaN and infinite floats as "NaN", "Infinity" and "-Infinity" (PostgreSQL's jsonb
    refuses the bare tokens, and an event is not lost for a latency that came out NaN). Any other
    object raises ``TypeError``, as ``json.dumps`` would.
    """
    if type(value) is dict:
        return {key: _jsonable(item) for key, item in value.items()}
    if type(value) is list:
        return [_jsonable(item) for item in value]
    if isinstance(value, float):  # float subclasses too (numpy.float64), whatever their repr
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    if value is None or isinstance(value, (str, int)):
        return value
    return _DJANGO_JSON.default(value)


_DJANGO_JSON = DjangoJSONEncoder()


def actor_label_for(actor) -> str:
    """Username, agent name or the given ``system:<job>`` label of an actor."""
    if actor is None:
        return "system"
    if isinstance(actor, str):
        return actor
    if not getattr(actor, "is_authenticated", False):
        return "anonymous"
    return getattr(actor, "agent_name", None) or actor.get_username()


# get_client_ip's answer is already a normalised address, or one of these when there is none.
_UNSPECIFIED_ADDRESSES = frozenset({"0.0.0.0", "::"})  # noqa: S104 (compared, never bound)


def _client_ip(request) -> str | None:
    address = get_client_ip(request)
    return None if address in _UNSPECIFIED_ADDRESSES else address


def _as_uuid(value: str | uuid.UUID | None) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    return uuid.UUID(str(value)) if value else uuid7()


_SEVERITY_BY_NAME = {member.label: int(member) for member in Severity}


def _severity(value: str | int) -> int:
    if isinstance(value, int):
        return int(Severity(value))
    try:
        return _SEVERITY_BY_NAME[value]
    except KeyError:
        raise ValidationFailed(f"unknown severity {value!r}; expected one of {', '.join(SEVERITIES)}") from None


@dataclass(slots=True)
class _Origin:
    """The fields of an event that come from its actor and request, the same for a whole batch."""

    actor_id: int | None
    actor_label: str
    request_id: str
    ip: str | None
    user_agent: str


def _origin(actor, request, actor_label: str | None) -> _Origin:
    user = actor if actor is not None and not isinstance(actor, str) else None
    if user is not None and not getattr(user, "is_authenticated", False):
        user = None
    return _Origin(
        actor_id=user.pk if user is not None else None,
        actor_label=(actor_label or actor_label_for(actor))[:150],
        request_id=(getattr(request, "request_id", None) if request is not None else None) or get_request_id() or "",
        ip=_client_ip(request) if request is not None else None,
        user_agent=request.META.get("HTTP_USER_AGENT", "")[:512] if request is not None else "",
    )


def _utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive one is read in the default time zone, as the ORM reads it."""
    if moment.tzinfo is UTC:
        return moment
    if moment.tzinfo is None:
        moment = timezone.make_aware(moment)
    return moment.astimezone(UTC)


def _check_action(action: str) -> None:
    if not isinstance(action, str) or not _is_valid_action(action):
        raise ValidationFailed(f"Audit action {action!r} is not a dotted <entity>.<past_tense_verb> name.")


# A process logs a few dozen distinct actions: each is matched against the pattern once.
@functools.lru_cache(maxsize=1024)
def _is_valid_action(action: str) -> bool:
    return len(action) <= 100 and ACTION_RE.match(action) is not None


def _event(
    origin: _Origin,
    now: datetime,
    *,
    action: str,
    resource_type: str | int,
    resource_id: str | int,
    severity: str | int,
    success: bool,
    details: Mapping[str, Any] | None,
    event_id: str | uuid.UUID | None,
    occurred_at: datetime | None,
) -> PendingEvent:
    details_value, details_json = _details_and_json(details)
    return PendingEvent(
        event_id=_as_uuid(event_id),
        # In UTC: an offset with a fraction of a second (+01:00:30.5, which fromisoformat accepts and
        # isoformat writes back) has no text form PostgreSQL reads, and the instant is the same.
        occurred_at=now if occurred_at is None else _utc(occurred_at),
        recorded_at=now,
        actor_id=origin.actor_id,
        actor_label=origin.actor_label,
        action=action,
        resource_type=str(resource_type)[:64],
        resource_id=str(resource_id)[:128],
        severity=_severity(severity),
        success=bool(success),
        request_id=origin.request_id,
        ip=origin.ip,
        user_agent=origin.user_agent,
        details=details_value,
        details_json=details_json,
    )


def build_event(
    *,
    actor,
    action: str,
    resource_type: str = "",
    resource_id: str | int = "",
    severity: str | int = "info",
    success: bool = True,
    details: Mapping[str, Any] | None = None,
    request=None,
    actor_label: str | None = None,
    event_id: str | uuid.UUID | None = None,
    occurred_at: datetime | None = None,
) -> PendingEvent:
    """An event ready for the writer, every derived field filled (validated, masked, truncated)."""
    _check_action(action)
    return _event(
        _origin(actor, request, actor_label),
        datetime.now(UTC),  # USE_TZ is always on; timezone.now() adds a settings read
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        severity=severity,
        success=success,
        details=details,
        event_id=event_id,
        occurred_at=occurred_at,
    )


def audit_log(
    *,
    actor,
    action: str,
    resource_type: str = "",
    resource_id: str | int = "",
    severity: str = "info",
    success: bool = True,
    details: dict[str, Any] | None = None,
    request=None,
    actor_label: str | None = None,
    durable: bool = False,
    event_id: str | None = None,
    occurred_at: datetime | None = None,
) -> None:
    """Record that ``actor`` (a user, a ``system:<job>`` label, or None for the system) did ``action``."""
    event = build_event(
        actor=actor,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        severity=severity,
        success=success,
        details=details,
        request=request,
        actor_label=actor_label,
        event_id=event_id,
        occurred_at=occurred_at,
    )
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "audit %s by %s on %s:%s success=%s",
            event.action,
            event.actor_label,
            event.resource_type,
            event.resource_id,
            event.success,
            extra={"audit_action": event.action, "audit_event_id": str(event.event_id)},
        )
    enqueue(event, durable=durable)


def audit_events_ingest(*, actor, rows: list[dict[str, Any]], request=None) -> IngestResult:
    """Stores events an agent sends in one batch, each once; returns the counts (rejections are the caller's).

    ``rows`` are already-validated dicts (``audit.serializers.parse_event_rows``) with the row's
    ``index``; the actor is always ``actor``, never a field of the row.
    """
    result = IngestResult()
    events: list[PendingEvent] = []
    seen: set[uuid.UUID] = set()
    # Actor, request id, IP and user agent are the same for every row: worked out once.
    origin = _origin(actor, request, None)
    now = datetime.now(UTC)
    for row in rows:
        _check_action(row["action"])
        event = _event(
            origin,
            now,
            action=row["action"],
            resource_type=row.get("resource_type", ""),
            resource_id=row.get("resource_id", ""),
            severity=row.get("severity", "info"),
            success=row.get("success", True),
            details=row.get("details"),
            event_id=row.get("event_id"),
            occurred_at=row.get("occurred_at"),
        )
        if event.event_id in seen:
            result.duplicates += 1
            continue
        seen.add(event.event_id)
        events.append(event)
    # The platform's batch-ingest path (agentplatform.ingest): one COPY straight into the table, all
    # or nothing; a batch holding an id already stored (a retry) goes through ON CONFLICT instead.
    stored = insert_events(events, optimistic=True)
    result.accepted = len(stored)
    result.duplicates += len(events) - len(stored)
    return result
