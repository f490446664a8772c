"""Wiring into the rest of the platform: platform counters, Celery worker processes."""

from __future__ import annotations

import json

from celery.signals import worker_process_init, worker_process_shutdown, worker_ready

from agentplatform import counters
from monitoring.recorder import PLATFORM_COUNTERS_KEY, recorder


def _count_platform_counter(name: str, amount: int, labels: tuple[tuple[str, str], ...]) -> None:
    # One field per (name, labels): JSON keeps arbitrary label values unambiguous.
    recorder.count(PLATFORM_COUNTERS_KEY, json.dumps([name, list(labels)], separators=(",", ":")), amount)


def _worker_started(**kwargs) -> None:
    recorder.process_kind = "worker"
    recorder.ensure_started()


def _worker_stopping(**kwargs) -> None:
    recorder.flush()


def _audit_unsealed_events() -> int:
    from audit.models import AuditEvent

    # The audit app's backlog: rows written (each request's buffer is flushed when it ends) but not
    # yet sealed into the hash chain. Counted through its partial index on unsealed rows.
    return AuditEvent.objects.filter(chain_index__isnull=True).count()


def connect() -> None:
    from django.apps import apps

    from monitoring.metrics import register_gauge

    counters.add_sink(_count_platform_counter)
    if apps.is_installed("audit"):
        register_gauge(
            "audit_unsealed_events", "Audit events written but not yet sealed into the chain.", _audit_unsealed_events
        )
    # worker_ready: the main process (solo/threads pools run tasks there); worker_process_init: each
    # prefork child.
    worker_ready.connect(_worker_started, weak=False)
    worker_process_init.connect(_worker_started, weak=False)
    worker_process_shutdown.connect(_worker_stopping, weak=False)
