"""Refused requests (401 and 403): a budget per caller, and one audit event per caller, path and minute.

A caller that keeps getting refused (an agent hammering an endpoint it may not read, a script
trying keys) costs every request an authentication and, for a 403, an audit row. Two limits:

- **Budget.** Every 401/403 answer counts in the rate-limit group ``auth.denied``, per caller
  (``agentplatform.ratelimit.identity_key``: API key, else user, else client IP). Past the budget
  the answer becomes 429 with ``Retry-After``. A cache outage leaves the refusal as it was.
- **Aggregated audit.** A 403 is tallied in the shared cache under (caller, path, minute). The
  first refusal of a tally schedules ``accounts.denials_flush`` for just after the minute ends,
  which writes one durable ``auth.permission_denied`` event with the ``count`` of the minute (and
  the 429s the budget turned them into). A flood costs one audit row per caller, path and minute.
  When the cache or the broker fails, the refusal is audited at once, as one event of count 1.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from datetime import UTC, datetime

from django.core.cache import cache
from redis.exceptions import RedisError

from accounts.models import User
from agentplatform import counters
from agentplatform.client_ip import get_client_ip
from agentplatform.errors import DependencyUnavailable, RateLimited
from agentplatform.ratelimit import enforce, identity_key
from audit import services as audit_services

logger = logging.getLogger(__name__)

DENIAL_GROUP = "auth.denied"
_TALLY_SECONDS = 3600  # how long a tally waits for its flush before the cache forgets it
_FLUSH_DELAY_SECONDS = 5  # after the minute ends: a refusal counted by a process with a slower clock
_EVENT_NAMESPACE = uuid.UUID("5b7c1a52-9f5e-4a7e-8f0c-2d6b1f0e3a11")


def denial_budget_exceeded(request) -> RateLimited | None:
    """Counts one 401/403 answer of the caller; the 429 to answer instead when past the budget."""
    try:
        enforce(DENIAL_GROUP, identity_key(request))
    except RateLimited as exc:
        return exc
    except DependencyUnavailable:
        return None  # no shared counter: the refusal stands as it is, never a 503 instead
    return None


def _path(request) -> str:
    # "%00" in a probed URL: a NUL cannot be stored in PostgreSQL text.
    return getattr(request, "path", "").replace("\x00", "\\x00")[:200]


def _tally_keys(bucket: str) -> tuple[str, str]:
    return f"accounts:denials:{bucket}:count", f"accounts:denials:{bucket}:meta"


def _description(request, *, resource_type: str, view: str, required: list[str], now: float) -> dict:
    user = getattr(request, "user", None)
    authenticated = bool(getattr(user, "is_authenticated", False))
    return {
        "actor_id": user.pk if authenticated else None,
        "actor_label": user.get_username() if authenticated else "anonymous",
        "resource_type": resource_type,
        "path": _path(request),
        "method": getattr(request, "method", ""),
        "view": view,
        "required": required,
        "first_at": now,
        "ip": get_client_ip(request),
        "request_id": getattr(request, "request_id", "") or "",
    }


def denial_record(*, request, resource_type: str, view: str, required: list[str]) -> None:
    """Tallies one 403 under (caller, path, minute); the first of a minute schedules its audit event."""
    now = time.time()
    minute = int(now // 60)
    caller = identity_key(request)
    digest = hashlib.sha256(f"{caller}\n{_path(request)}".encode()).hexdigest()[:32]
    bucket = f"{minute}:{digest}"
    count_key, meta_key = _tally_keys(bucket)
    description = _description(request, resource_type=resource_type, view=view, required=required, now=now)
    try:
        cache.add(count_key, 0, _TALLY_SECONDS)
        count = cache.incr(count_key)
        if count == 1:
            cache.set(meta_key, description, _TALLY_SECONDS)
    except (RedisError, ValueError) as exc:  # ValueError: the tally expired between add and incr
        logger.warning("denial tally unavailable (%s); auditing the refusal at once", exc.__class__.__name__)
        _audit(description, count=1, minute=minute, event_id=None)
        return
    if count == 1:
        _schedule_flush(bucket, description, countdown=int((minute + 1) * 60 - now) + _FLUSH_DELAY_SECONDS)


def _schedule_flush(bucket: str, description: dict, *, countdown: int) -> None:
    from accounts.tasks import denials_flush_task  # the tasks module imports this one

    try:
        denials_flush_task.apply_async(kwargs={"bucket": bucket}, countdown=countdown)
    except Exception as exc:  # kombu raises several transport errors: the audit must not be lost to any
        # No flush will come for this tally: audit this refusal on its own (its own event id, so the
        # next refusal's event is not taken for a duplicate) and drop the tally, so each refusal
        # while the broker is down is audited the same way (the 401/403 budget bounds how many).
        logger.warning("cannot schedule the denial flush (%s); auditing now", exc.__class__.__name__)
        try:
            cache.delete_many(list(_tally_keys(bucket)))
        except RedisError:
            counters.increment("accounts_cache_errors", operation="denials_flush")
        _audit(description, count=1, minute=int(bucket.partition(":")[0]), event_id=None)


def denials_flush(*, bucket: str) -> bool:
    """Writes the one audit event of a (caller, path, minute) tally and forgets the tally; False if none."""
    count_key, meta_key = _tally_keys(bucket)
    try:
        found = cache.get_many([count_key, meta_key])
        cache.delete_many([count_key, meta_key])
    except RedisError:
        counters.increment("accounts_cache_errors", operation="denials_flush")
        raise  # the task is retried by Celery's acks_late; the tally is still there
    description, count = found.get(meta_key), found.get(count_key)
    if description is None or not count:
        return False
    # A deterministic id: a flush that runs twice stores the event once.
    _audit(
        description, count=count, minute=int(bucket.partition(":")[0]), event_id=uuid.uuid5(_EVENT_NAMESPACE, bucket)
    )
    return True


def _audit(description: dict, *, count: int, minute: int, event_id: uuid.UUID | None) -> None:
    actor = User.objects.filter(pk=description["actor_id"]).first() if description["actor_id"] else None
    audit_services.audit_log(
        actor=actor,
        actor_label=None if actor is not None else description["actor_label"],
        action="auth.permission_denied",
        durable=True,
        resource_type=description["resource_type"],
        resource_id=description["path"],
        severity="warning",
        success=False,
        details={
            "method": description["method"],
            "view": description["view"],
            "required": description["required"],
            "count": count,  # refusals of this caller on this path in this minute
            "minute": datetime.fromtimestamp(minute * 60, UTC).isoformat(),
            "ip": description["ip"],
            "first_request_id": description["request_id"],
        },
        event_id=str(event_id) if event_id is not None else None,
        occurred_at=datetime.fromtimestamp(description["first_at"], UTC),
    )
