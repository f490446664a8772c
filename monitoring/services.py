"""Writes of the monitoring app: ingestion, rollup, retention, system snapshots, heartbeats."""

from __future__ import annotations

import logging
import os
import socket
from datetime import datetime, timedelta

import psutil
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from agentplatform.errors import DependencyUnavailable, PermissionDenied, ValidationFailed
from agentplatform.ingest import IngestResult, ingest_rows
from monitoring.models import (
    AgentRun,
    OperationDay,
    OperationHour,
    OperationMinute,
    ProcessHeartbeat,
    RolledClaim,
    SeenEvent,
    SystemSnapshot,
)
from monitoring.operations import histogram_rows_add, operations_submit
from monitoring.parsing import AgentRunRow, OperationRow
from monitoring.sketch import bucket_index
from monitoring.store import DatabaseStore, EventRow, event_increments, get_store, minute_key
from monitoring.timeutils import epoch, floor_day, floor_hour, floor_minute

logger = logging.getLogger(__name__)

ROLLUP_LOCK_KEY = "monitoring:rollup-lock"
# Seconds the rollup lock is held at most (a crashed run frees it after this).
ROLLUP_LOCK_SECONDS = 300

# Prime psutil's CPU counter at import, so the first snapshot of a worker measures since start-up
# rather than reporting a meaningless 0.0 (cpu_percent(interval=None) compares with the last call).
psutil.cpu_percent(interval=None)


# --- ingestion ----------------------------------------------------------------------------------
def operations_ingest(*, rows: list[OperationRow], submitter) -> IngestResult:
    """Counts validated operation rows into their minutes; an event_id the submitter sent before counts once.

    Event ids are the submitter's own: the same id from another caller is another event. The
    counts go to this process's writer (``monitoring.operations``), which adds them to the
    database; they never wait in Redis, where only the event ids (which may expire) are kept.
    """
    keys: dict[tuple[int, str], str] = {}
    events = []
    scope = f"{submitter.pk}:"
    for row in rows:
        minute = int(row.occurred_at // 60) * 60
        key = keys.get((minute, row.operation))
        if key is None:
            key = keys[(minute, row.operation)] = minute_key(minute, row.operation)
        events.append(
            EventRow(
                scope + row.event_id if row.event_id else "",
                key,
                bucket_index(row.duration_ms),
                not row.success,
                round(row.duration_ms * 1000),
            )
        )
    ids = [event.event_id for event in events if event.event_id]
    store = get_store()
    ttl = settings.MONITORING_EVENT_ID_TTL_SECONDS
    seen = iter(store.see_event_ids(ids, id_ttl_seconds=ttl))
    fresh = [event for event in events if not event.event_id or next(seen)]
    try:
        operations_submit(event_increments(fresh))
    except DependencyUnavailable:
        # Nothing was acknowledged: forget the ids this call marked, so the client's retry counts.
        store.unsee_event_ids([event.event_id for event in fresh if event.event_id], id_ttl_seconds=ttl)
        raise
    return IngestResult(accepted=len(fresh), duplicates=len(rows) - len(fresh))


_AGENT_RUN_COLUMNS = (
    "run_id",
    "agent",
    "workflow",
    "steps",
    "retry_count",
    "no_progress_count",
    "critic_score",
    "tokens",
    "outcome",
    "started_at",
    "finished_at",
    "received_at",
    "submitted_by_id",
)


def agent_runs_ingest(*, rows: list[AgentRunRow], actor, own_runs_only: bool) -> IngestResult:
    """Stores validated agent runs once each per submitter (``actor``); a run_id it sent before is a duplicate.

    With ``own_runs_only`` (an API-key caller, i.e. an agent), every run is the actor's own: a row
    naming another agent refuses the whole batch (``PermissionDenied``), so one agent can neither
    file runs under another's name nor take its run ids.
    """
    own_name = actor.get_username()
    if own_runs_only:
        for index, row in enumerate(rows):
            if row.agent is not None and row.agent != own_name:
                raise PermissionDenied(
                    "An agent files its own runs only: 'agent' must be your own name or left out.",
                    details={"index": index, "field": "agent", "agent": own_name},
                )
    agent_max = AgentRun._meta.get_field("agent").max_length
    if len(own_name) > agent_max and any(row.agent is None for row in rows):
        # Usernames may be longer than an agent's name: refuse clearly instead of failing the COPY.
        raise ValidationFailed(
            f"Your username is longer than an agent name may be ({agent_max} characters): send 'agent'.",
            details={"agent": [f"Required for a caller whose name is over {agent_max} characters."]},
        )
    now = timezone.now()
    table_rows: dict[str, tuple] = {}
    for row in rows:
        if row.run_id in table_rows:
            continue  # a repeat inside the batch: counted as a duplicate below
        table_rows[row.run_id] = (
            row.run_id,
            row.agent or own_name,
            row.workflow,
            row.steps,
            row.retry_count,
            row.no_progress_count,
            row.critic_score,
            row.tokens,
            row.outcome,
            row.started_at,
            row.finished_at,
            now,
            actor.pk,
        )
    stored = ingest_rows(
        table=AgentRun._meta.db_table,
        columns=_AGENT_RUN_COLUMNS,
        rows=list(table_rows.values()),
        conflict_key=("submitted_by_id", "run_id"),
    )
    return IngestResult(accepted=len(stored), duplicates=len(rows) - len(stored))


# --- rollup and retention -----------------------------------------------------------------------
def metrics_rollup(*, now: datetime | None = None) -> int:
    """Moves closed minutes from the shared store into the database; returns the minutes added.

    Idempotent: in Redis a closed minute is first claimed (renamed atomically), then added in a
    transaction that also records the claim id, and only then deleted; a run that dies between the
    commit and the delete is finished by the next run, which finds the claim id and skips the add.
    """
    now = now or timezone.now()
    # A minute closes at its end plus the grace period (late flushes, clock skew).
    cutoff_epoch = epoch(floor_minute(now - timedelta(seconds=settings.MONITORING_ROLLUP_GRACE_SECONDS))) - 60
    if not cache.add(ROLLUP_LOCK_KEY, 1, ROLLUP_LOCK_SECONDS):
        logger.info("metrics_rollup: another rollup is running")
        return 0
    try:
        store = get_store()
        if isinstance(store, DatabaseStore):
            with transaction.atomic():
                return histogram_rows_add(store.take_closed(cutoff_epoch=cutoff_epoch))
        store.claim_closed(cutoff_epoch=cutoff_epoch)
        claims = store.claimed()
        if not claims:
            return 0
        with transaction.atomic():
            claim_ids = [claim for claim, _ in claims]
            done = set(RolledClaim.objects.filter(claim_id__in=claim_ids).values_list("claim_id", flat=True))
            todo = [(claim, minute) for claim, minute in claims if claim not in done]
            RolledClaim.objects.bulk_create([RolledClaim(claim_id=claim, rolled_at=now) for claim, _ in todo])
            added = histogram_rows_add(minute for _, minute in todo)
        store.release_claims(claim_ids)
        return added
    finally:
        cache.delete(ROLLUP_LOCK_KEY)


def metrics_prune(*, now: datetime | None = None) -> int:
    """Applies retention; returns the number of rows deleted.

    Hours (and days) are written together with their minutes at rollup, so rolling minutes older
    than MONITORING_MINUTE_RETENTION_DAYS "to hours" is deleting them: their hour rows already hold
    the same counts. Whole hours go at once, so an hour is never half minutes, half gone. Days
    follow the hours' retention.
    """
    now = now or timezone.now()
    minute_cutoff = floor_hour(now - timedelta(days=settings.MONITORING_MINUTE_RETENTION_DAYS))
    long_cutoff = now - timedelta(days=settings.MONITORING_HOUR_RETENTION_DAYS)
    day_ago = now - timedelta(days=1)
    deleted = 0
    deleted += OperationMinute.objects.filter(minute__lt=minute_cutoff).delete()[0]
    deleted += OperationHour.objects.filter(hour__lt=floor_hour(long_cutoff)).delete()[0]
    deleted += OperationDay.objects.filter(day__lt=floor_day(long_cutoff)).delete()[0]
    deleted += AgentRun.objects.filter(finished_at__lt=long_cutoff).delete()[0]
    deleted += SystemSnapshot.objects.filter(taken_at__lt=long_cutoff).delete()[0]
    deleted += ProcessHeartbeat.objects.filter(seen_at__lt=day_ago).delete()[0]
    deleted += RolledClaim.objects.filter(rolled_at__lt=day_ago).delete()[0]
    # Event ids (the database store's) and the operations writer's item ids.
    deleted += SeenEvent.objects.filter(
        seen_at__lt=now - timedelta(seconds=settings.MONITORING_EVENT_ID_TTL_SECONDS)
    ).delete()[0]
    return deleted


# --- system -------------------------------------------------------------------------------------
def process_heartbeat_record(*, kind: str, started_at: datetime, now: datetime | None = None) -> ProcessHeartbeat:
    """Records the calling process's resident memory (each web and worker process reports itself)."""
    now = now or timezone.now()
    hostname = socket.gethostname()[:200]
    pid = os.getpid()
    heartbeat, _ = ProcessHeartbeat.objects.update_or_create(
        name=f"{kind}:{hostname}:{pid}"[:200],
        defaults={
            "kind": kind,
            "hostname": hostname,
            "pid": pid,
            "rss_bytes": psutil.Process().memory_info().rss,
            "started_at": started_at,
            "seen_at": now,
        },
    )
    return heartbeat


def queue_lengths() -> dict[str, int]:
    """Messages waiting in each Celery queue, read from the broker (passive declare, no change)."""
    from agentplatform.celery import app as celery_app

    names = {celery_app.conf.task_default_queue}
    names.update(queue.name for queue in (celery_app.conf.task_queues or ()))
    lengths: dict[str, int] = {}
    with celery_app.connection_for_read() as conn:
        conn.ensure_connection(max_retries=1)
        channel = conn.default_channel
        for name in sorted(names):
            try:
                lengths[name] = channel.queue_declare(queue=name, passive=True).message_count
            except conn.channel_errors:  # the queue does not exist yet: nothing waits in it
                lengths[name] = 0
                channel = conn.channel()
    return lengths


def system_snapshot(*, now: datetime | None = None) -> SystemSnapshot:
    """Records host CPU (non-blocking), memory, disk, network, load, processes and queue lengths."""
    now = now or timezone.now()
    memory = psutil.virtual_memory()
    disk = psutil.disk_usage(os.path.abspath(os.sep))
    network = psutil.net_io_counters()
    load_1, load_5, load_15 = psutil.getloadavg()
    fresh = now - timedelta(seconds=3 * settings.MONITORING_HEARTBEAT_SECONDS)
    processes = [
        {
            "kind": beat.kind,
            "hostname": beat.hostname,
            "pid": beat.pid,
            "rss_bytes": beat.rss_bytes,
            "seen_at": beat.seen_at.isoformat(),
        }
        for beat in ProcessHeartbeat.objects.filter(seen_at__gte=fresh).order_by("kind", "hostname", "pid")
    ]
    try:
        queues = queue_lengths()
    except Exception:  # the broker is down: the snapshot still records the host
        logger.warning("system_snapshot: could not read queue lengths", exc_info=True)
        queues = {}
    return SystemSnapshot.objects.create(
        taken_at=now,
        hostname=socket.gethostname()[:200],
        cpu_percent=psutil.cpu_percent(interval=None),
        load_1=load_1,
        load_5=load_5,
        load_15=load_15,
        memory_total_bytes=memory.total,
        memory_used_bytes=memory.total - memory.available,
        memory_percent=memory.percent,
        disk_total_bytes=disk.total,
        disk_used_bytes=disk.used,
        disk_percent=disk.percent,
        net_bytes_sent=network.bytes_sent if network else 0,
        net_bytes_recv=network.bytes_recv if network else 0,
        process_count=len(psutil.pids()),
        processes=processes,
        queues=queues,
    )
