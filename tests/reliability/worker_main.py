"""A real Celery worker (prefork) for the worker-killed fault test, with one test-only job.

Run as ``python -m tests.reliability.worker_main`` with the environment the test gives it
(``DATABASE_URL`` of the test database, ``CELERY_BROKER_URL`` and ``REDIS_URL`` of a private
redis-server, ``FAULT_JOB_DIR``). The job ``fault_gated_report`` is registered in this main process
before the pool forks, so every pool child (including the one that replaces a killed child) has it.

The job writes the real daily report of its day (``reports.services.daily_report``: one ``Report``
per kind and period, created or replaced), then announces itself in ``FAULT_JOB_DIR`` and blocks
until the test creates ``FAULT_JOB_DIR/release``. A child killed while it blocks has written its
report but recorded no outcome: the redelivered task must run the job again and leave one report
and one successful run.
"""

from __future__ import annotations

import json
import os
import time
from datetime import date
from pathlib import Path

JOB_NAME = "fault_gated_report"
RELEASE_FILE = "release"
# Seconds a delivery waits for the test's signal before failing (the test never needs this long).
GATE_TIMEOUT = 180


def gated_daily_report(*, day: date):
    from accounts.models import User
    from reports.services import daily_report

    report = daily_report(day=day)
    directory = Path(os.environ["FAULT_JOB_DIR"])
    announcement = {
        "pid": os.getpid(),
        "report_id": report.pk,
        # Proves the worker reads the test's committed rows (same database as the test).
        "sees_marker": User.objects.filter(username=os.environ.get("FAULT_MARKER_USER", "")).exists(),
    }
    started = directory / f"started-{os.getpid()}.json"
    started.with_suffix(".tmp").write_text(json.dumps(announcement))
    started.with_suffix(".tmp").rename(started)  # atomic: the test never reads half a file
    deadline = time.monotonic() + GATE_TIMEOUT
    while not (directory / RELEASE_FILE).exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{JOB_NAME}: the test never released the job")
        time.sleep(0.05)
    return report


def main() -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentplatform.settings")
    django.setup()

    from agentplatform.scheduling import periods
    from agentplatform.scheduling.registry import JOBS, JobSpec

    JOBS[JOB_NAME] = JobSpec(
        name=JOB_NAME,
        service="tests.reliability.worker_main.gated_daily_report",
        description="Writes a daily report, then blocks until the fault test releases it.",
        period=periods.DAY,
    )

    from agentplatform.celery import app

    app.worker_main(
        [
            "worker",
            "--pool=prefork",
            "--concurrency=1",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            f"--hostname=fault-worker-{os.getpid()}@localhost",
        ]
    )


if __name__ == "__main__":
    main()
