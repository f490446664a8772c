"""Writes to the audit log.

``audit_log`` is the one call every state-changing service uses. Until the audit issue (5) lands
its model and buffered writer, it records through the ``audit`` logger so callers can already be
written against the final signature.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from agentplatform.request_id import get_request_id

logger = logging.getLogger("audit")

SEVERITIES = ("debug", "info", "warning", "error", "critical")


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
    """Record that ``actor`` (a user, or None for the system) did ``action`` to a resource."""
    label = actor_label or (getattr(actor, "username", None) if actor is not None else "system")
    logger.info(
        "audit %s by %s on %s:%s success=%s",
        action,
        label,
        resource_type,
        resource_id,
        success,
        extra={"audit_action": action, "audit_severity": severity, "audit_request_id": get_request_id()},
    )
