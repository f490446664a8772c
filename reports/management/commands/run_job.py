"""``python manage.py run_job NAME [--date YYYY-MM-DD] [--source ID] [--force]`` and ``--list``."""

from __future__ import annotations

from datetime import date

from django.core.management.base import BaseCommand, CommandError, CommandParser

from agentplatform.scheduling.registry import JOBS
from agentplatform.scheduling.runner import JobRequest, job_run
from reports.models import JobOutcome, JobTrigger


class Command(BaseCommand):
    help = "Runs a scheduled job now, synchronously, through the same path as the Celery task."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", nargs="?", help="job name (see --list)")
        parser.add_argument("--list", action="store_true", help="list every app's jobs and whether each is available")
        parser.add_argument("--date", type=date.fromisoformat, help="a UTC day (YYYY-MM-DD) selecting the period")
        parser.add_argument("--source", type=int, help="collect_sources: collect only this source id")
        parser.add_argument("--force", action="store_true", help="re-run a period that already succeeded")

    def handle(self, *args, **options) -> None:
        if options["list"]:
            for job in sorted(JOBS.values(), key=lambda spec: (spec.app, spec.name)):
                state = "available" if job.available else "unavailable"
                schedule = str(job.schedule) if job.schedule else "on demand"
                tracked = job.period or "untracked"
                self.stdout.write(
                    f"{job.app:<14} {job.name:<24} {state:<12} {tracked:<13} {schedule:<26} {job.description}"
                )
            return
        name = options["name"]
        if not name or name not in JOBS:
            raise CommandError(f"Unknown job {name!r}. Known jobs: {', '.join(sorted(JOBS))}.")
        if options["source"] is not None and name != "collect_sources":
            raise CommandError("--source applies only to collect_sources.")
        spec = JOBS[name]
        if not spec.tracked:
            # A ticker (heartbeat, exposure flush): call it as its task does, no JobRun.
            if options["date"] or options["force"]:
                raise CommandError(f"{name} has no period: --date and --force do not apply.")
            self.stdout.write(f"{name}: ran, returned {spec.resolve()()!r}")
            return
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
