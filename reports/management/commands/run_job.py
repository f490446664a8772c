"""``python manage.py run_job NAME [--date YYYY-MM-DD] [--source ID] [--force]`` and ``--list``."""

from __future__ import annotations

from datetime import date

from django.core.management.base import BaseCommand, CommandError, CommandParser

from reports.jobs.registry import JOBS
from reports.jobs.runner import JobRequest, job_run
from reports.models import JobOutcome, JobTrigger


def _schedule_text(job) -> str:
    if job.every_seconds:
        return f"every {job.every_seconds // 60} min" if job.every_seconds % 60 == 0 else f"every {job.every_seconds} s"
    cron = {"minute": "0", "hour": "*", "day_of_week": "*", "day_of_month": "*", **job.crontab}
    return f"cron {cron['minute']} {cron['hour']} {cron['day_of_month']} * {cron['day_of_week']} UTC"


class Command(BaseCommand):
    help = "Runs a scheduled job now, synchronously, through the same path as the Celery task."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", nargs="?", help="job name (see --list)")
        parser.add_argument("--list", action="store_true", help="list the jobs and whether each is available")
        parser.add_argument("--date", type=date.fromisoformat, help="a UTC day (YYYY-MM-DD) selecting the period")
        parser.add_argument("--source", type=int, help="collect_sources: collect only this source id")
        parser.add_argument("--force", action="store_true", help="re-run a period that already succeeded")

    def handle(self, *args, **options) -> None:
        if options["list"]:
            for job in JOBS.values():
                state = "available" if job.available else "unavailable"
                self.stdout.write(f"{job.name:<24} {state:<12} {_schedule_text(job):<26} {job.description}")
            return
        name = options["name"]
        if not name or name not in JOBS:
            raise CommandError(f"Unknown job {name!r}. Known jobs: {', '.join(JOBS)}.")
        if options["source"] is not None and name != "collect_sources":
            raise CommandError("--source applies only to collect_sources.")
        run = job_run(
            request=JobRequest(job=name, day=options["date"], source_id=options["source"], force=options["force"]),
            trigger=JobTrigger.COMMAND,
        )
        rows = "" if run.rows_affected is None else f", {run.rows_affected} rows"
        line = f"{run.job} {run.period}{' ' + run.scope if run.scope else ''}: {run.outcome}{rows} (run {run.pk})"
        if run.error_summary:
            line += f"\n  {run.error_summary}"
        if run.outcome == JobOutcome.FAILED or run.details.get("unavailable"):
            raise CommandError(line)
        self.stdout.write(line)
