"""The system snapshot job and the process heartbeats."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest

from agentplatform.scheduling.runner import JobRequest, job_run
from monitoring.models import ProcessHeartbeat, SystemSnapshot
from monitoring.recorder import recorder
from monitoring.services import process_heartbeat_record, system_snapshot
from reports.models import JobOutcome

pytestmark = pytest.mark.django_db


def test_system_snapshot_records_host_figures_and_queue_lengths():
    snapshot = system_snapshot()
    snapshot.refresh_from_db()
    assert 0 <= snapshot.cpu_percent <= 100
    assert snapshot.memory_total_bytes > snapshot.memory_used_bytes > 0
    assert snapshot.disk_total_bytes > 0 and snapshot.process_count > 0
    assert snapshot.load_1 >= 0 and snapshot.net_bytes_recv >= 0
    assert snapshot.queues == {"celery": 0}


def test_system_snapshot_includes_processes_that_reported_recently():
    now = datetime.now(UTC)
    recorder.heartbeat()
    ProcessHeartbeat.objects.create(
        name="worker:gone:1",
        kind="worker",
        hostname="gone",
        pid=1,
        rss_bytes=1,
        started_at=now,
        seen_at=now - timedelta(hours=1),
    )
    snapshot = system_snapshot(now=now)
    assert [(p["kind"], p["pid"]) for p in snapshot.processes] == [("web", os.getpid())]
    assert snapshot.processes[0]["rss_bytes"] > 0


def test_system_snapshot_still_records_when_the_broker_is_down(monkeypatch):
    def down():
        raise ConnectionError("broker down")

    monkeypatch.setattr("monitoring.services.queue_lengths", down)
    assert system_snapshot().queues == {}


def test_a_heartbeat_updates_its_own_row():
    started = datetime.now(UTC)
    process_heartbeat_record(kind="worker", started_at=started)
    process_heartbeat_record(kind="worker", started_at=started)
    assert ProcessHeartbeat.objects.filter(kind="worker", pid=os.getpid()).count() == 1


def test_the_monitoring_jobs_run_their_services(store_name):
    assert job_run(request=JobRequest(job="system_snapshot")).outcome == JobOutcome.SUCCESS
    assert SystemSnapshot.objects.count() == 1
    assert job_run(request=JobRequest(job="metrics_rollup")).rows_affected == 0
    pruned = job_run(request=JobRequest(job="metrics_prune"))
    assert (pruned.outcome, pruned.rows_affected >= 0) == (JobOutcome.SUCCESS, True)


def test_demo_seed_is_idempotent(store_name):
    import io

    from monitoring import demo
    from monitoring.models import AgentRun, OperationMinute

    demo.seed(stdout=io.StringIO())
    counts = (AgentRun.objects.count(), OperationMinute.objects.count(), SystemSnapshot.objects.count())
    demo.seed(stdout=io.StringIO())
    assert counts[0] == 300 and counts[1] > 0 and counts[2] == 1
    assert (AgentRun.objects.count(), OperationMinute.objects.count(), SystemSnapshot.objects.count()) == counts
