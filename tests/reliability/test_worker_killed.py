"""A Celery worker killed mid-job, end to end: a real prefork worker on a private redis-server,
against the test's own PostgreSQL database. The pool child running the job is SIGKILLed; the
message (acks_late + reject_on_worker_lost) goes back to the queue, the replacement child runs the
job again, and the job's idempotency leaves exactly one report and one successful run.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from urllib.parse import quote

import psutil
import pytest
from django.conf import settings as django_settings
from django.db import connections

from tests.reliability.faults import PrivateRedis
from tests.reliability.worker_main import JOB_NAME, RELEASE_FILE

ROOT = Path(__file__).resolve().parents[2]
ON_POSTGRESQL = django_settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
DAY = date(2026, 11, 26)
MARKER_USER = "fault-worker-marker"
# Seconds: generous bounds for a loaded 2-core machine; a healthy run needs a fraction of them.
START_TIMEOUT = 120
STEP_TIMEOUT = 90

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not ON_POSTGRESQL, reason="the worker process shares the test's PostgreSQL database"),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server for a private broker"),
    pytest.mark.django_db(transaction=True),
]


def database_url() -> str:
    """The URL of the database this test runs in (the test database, e.g. test_<branch>)."""
    db = connections["default"].settings_dict
    credentials = quote(db["USER"] or "", safe="")
    if db.get("PASSWORD"):
        credentials += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Worker:
    """``python -m tests.reliability.worker_main`` in its own session, logging to a file."""

    def __init__(self, *, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.worker_main"],
            cwd=ROOT,
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.alive():
            self.process.terminate()  # warm shutdown of the main process and its pool
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)  # whatever of this worker's session is left
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)


def wait_until(what: str, check: Callable[[], object], *, timeout: float, worker: Worker):
    """Polls ``check`` until it returns something truthy; fails naming ``what`` and the worker log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if not worker.alive():
            pytest.fail(f"the worker exited while waiting for {what}; its log:\n{worker.log_tail()}")
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}; worker log:\n{worker.log_tail()}")


def test_a_worker_killed_mid_job_redelivers_it_and_idempotency_leaves_one_result(tmp_path):
    from celery import Celery

    from accounts.models import User
    from reports.models import JobOutcome, JobRun, JobTrigger, Report, ReportKind

    User.objects.create_user(username=MARKER_USER, role="analyst", password=None)  # committed
    jobs_dir = tmp_path / "job"
    jobs_dir.mkdir()
    (tmp_path / "redis").mkdir()
    redis = PrivateRedis(tmp_path / "redis")
    redis.start()
    broker_url = f"redis://127.0.0.1:{redis.port}/0"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_", "_AGENTPLATFORM"))}
    env.pop("DATABASE_TEST_NAME", None)
    env.update(
        DJANGO_SETTINGS_MODULE="agentplatform.settings",
        DJANGO_ENV="test",
        DATABASE_URL=database_url(),
        DB_CONN_MAX_AGE="0",
        REDIS_URL=f"redis://127.0.0.1:{redis.port}/1",  # the job locks live here
        CELERY_BROKER_URL=broker_url,
        FAULT_JOB_DIR=str(jobs_dir),
        FAULT_MARKER_USER=MARKER_USER,
        PYTHONUNBUFFERED="1",
    )
    sender = Celery("fault-sender", broker=broker_url, set_as_current=False)
    sender.conf.update(task_serializer="json", accept_content=["json"], broker_connection_retry_on_startup=True)
    worker = Worker(env=env, log=tmp_path / "worker.log")
    try:
        # An explicit connection: Celery would otherwise prefer CELERY_BROKER_URL of this process (memory://).
        with sender.connection_for_write(broker_url) as connection:
            task_id = sender.send_task(
                "jobs.run",
                kwargs={"job": JOB_NAME, "date": DAY.isoformat(), "trigger": JobTrigger.COMMAND},
                connection=connection,
            ).id

        def started() -> list[dict]:
            return [json.loads(path.read_text()) for path in jobs_dir.glob("started-*.json")]

        first = wait_until("the first delivery to start the job", started, timeout=START_TIMEOUT, worker=worker)[0]
        assert first["sees_marker"] is True, "the worker does not see the test's committed rows"
        running = JobRun.objects.get(task_id=task_id)
        assert (running.job, running.outcome, running.period) == (JOB_NAME, JobOutcome.RUNNING, DAY.isoformat())
        child = psutil.Process(first["pid"])
        assert first["pid"] != worker.pid and child.ppid() == worker.pid, "the job must run in a pool child"

        os.kill(first["pid"], signal.SIGKILL)  # the pool child, mid-job; the main worker lives on

        def redelivered() -> dict | None:
            return next((item for item in started() if item["pid"] != first["pid"]), None)

        second = wait_until(
            "the task to be redelivered to a new pool child", redelivered, timeout=STEP_TIMEOUT, worker=worker
        )
        assert psutil.Process(second["pid"]).ppid() == worker.pid
        (jobs_dir / RELEASE_FILE).touch()

        def succeeded() -> JobRun | None:
            return JobRun.objects.filter(task_id=task_id, outcome=JobOutcome.SUCCESS).first()

        done = wait_until("the redelivered run to succeed", succeeded, timeout=STEP_TIMEOUT, worker=worker)
        assert worker.alive(), "the main worker process must survive the loss of its child"
    finally:
        worker.stop()
        redis.stop()

    runs = JobRun.objects.filter(job=JOB_NAME, period=DAY.isoformat())
    assert runs.count() == 2  # one row per delivery, both carrying the same task id
    assert set(runs.values_list("task_id", flat=True)) == {task_id}
    assert runs.filter(outcome=JobOutcome.SUCCESS).count() == 1
    killed = runs.exclude(pk=done.pk).get()
    assert killed.outcome == JobOutcome.RUNNING and killed.finished_at is None  # no outcome recorded
    reports = Report.objects.filter(kind=ReportKind.DAILY, period=DAY.isoformat())
    assert reports.count() == 1, "idempotency must leave one report for the period"
    assert reports.get().pk == first["report_id"] == second["report_id"]  # replaced, not duplicated
    assert done.rows_affected == 1
