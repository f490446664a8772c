"""Demo audit events for ``make run`` (idempotent: fixed event ids are stored once)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.utils import timezone

from audit.services import build_event
from audit.writer import insert_events

_NAMESPACE = uuid.UUID("6f1d3f0e-2d1b-4c53-9a53-61a1d5f0a001")
_EVENTS = [
    ("demo-agent-1", "tool.called", "info", True, {"tool": "search", "latency_ms": 412}),
    ("demo-agent-1", "tool.failed", "error", False, {"tool": "browser", "error": "timeout after 30 s"}),
    ("demo-agent-2", "prompt.resolved", "debug", True, {"prompt_type": "greeting"}),
    ("anonymous", "auth.login_failed", "warning", False, {"username": "admin", "password": "never stored"}),
    ("demo-agent-2", "document.exported", "info", True, {"formula_looking_cell": '=HYPERLINK("x")'}),
]


def seed(*, stdout) -> None:
    now = timezone.now()
    events = [
        build_event(
            actor=label,
            action=action,
            severity=severity,
            success=success,
            details=details,
            resource_type="demo",
            resource_id=str(index),
            event_id=uuid.uuid5(_NAMESPACE, str(index)),
            occurred_at=now - timedelta(minutes=10 * (len(_EVENTS) - index)),
        )
        for index, (label, action, severity, success, details) in enumerate(_EVENTS)
    ]
    stored = insert_events(events)
    stdout.write(f"audit: {len(stored)} demo events stored ({len(events) - len(stored)} already present)")
