"""Running a job: the one code path behind beat, "run now" and ``run_job``.

``job_run`` records a ``JobRun``, takes the job+period lock, skips a period that already
succeeded (unless forced), calls the service and records the outcome. Failures are logged and
audited (``actor_label="system:<job>"``), never silent. Transient errors (database or Redis
connection trouble, ``DependencyUnavailable``) are handed back to the Celery task as
``TransientJobFailure`` when it still has retries left; it retries with exponential backoff, and
the retry (same Celery task id) continues the ``JobRun`` row that task id left in ``retrying``.
The ``JobRun`` model stays in the ``reports`` app, where its table has always been.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.db import models as db_models
from django.utils import timezone

from agentplatform.errors import DependencyUnavailable, NotFound, PlatformError, ValidationFailed
from agentplatform.request_id import get_request_id, new_request_id, reset_request_id, set_request_id
from agentplatform.scheduling import periods
from agentplatform.scheduling.locks import JobLock
from agentplatform.scheduling.registry import JobSpec, JobUnavailable, job_get
from reports.models import JobOutcome, JobRun, JobTrigger

logger = logging.getLogger(__name__)


def _transient_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [OperationalError, InterfaceError, DependencyUnavailable, ConnectionError]
    try:
        import redis.exceptions

        errors += [redis.exceptions.ConnectionError, redis.exceptions.TimeoutError]
    except ImportError:  # pragma: no cover - redis is a runtime requirement
        pass
    from kombu.exceptions import OperationalError as KombuOperationalError

    errors.append(KombuOperationalError)
    return tuple(errors)


# Retried with backoff; everything else (bugs, bad data, time limits) fails the run at once.
TRANSIENT_ERRORS = _transient_errors()


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, TRANSIENT_ERRORS)


def retry_countdown(retries: int) -> float:
    """Seconds before retry number ``retries + 1``: base * 2**retries, capped."""
    return min(settings.JOBS_RETRY_BACKOFF_MAX_SECONDS, settings.JOBS_RETRY_BACKOFF_SECONDS * (2**retries))


class TransientJobFailure(Exception):
    """A run hit a transient error and may be retried; ``run_id`` names its row (for logs)."""

    def __init__(self, run_id: int, cause: BaseException):
        super().__init__(f"job run {run_id} hit a transient error: {cause!r}")
        self.run_id = run_id
        self.cause = cause


@dataclass(frozen=True)
class JobRequest:
    """What to run: a job name and, optionally, the day selecting its period and a source."""

    job: str
    day: date | None = None
    source_id: int | None = None
    force: bool = False

    def as_task_kwargs(self) -> dict:
        return {
            "job": self.job,
            "date": self.day.isoformat() if self.day else None,
            "source_id": self.source_id,
            "force": self.force,
        }


def _summary(exc: BaseException) -> str:
    return f"{exc.__class__.__name__}: {exc}"[:2000]


def _rows_affected(result) -> int | None:
    """Best reading of "rows affected" from what a service returned."""
    if isinstance(result, bool) or result is None:
        return None
    if isinstance(result, int):
        return result
    if isinstance(result, dict):
        for key in ("rows_affected", "rows", "count", "deleted", "sealed", "created"):
            if isinstance(result.get(key), int) and not isinstance(result.get(key), bool):
                return result[key]
        return None
    if isinstance(result, tuple) and result and isinstance(result[0], int):
        return result[0]  # QuerySet.delete() returns (count, per_model)
    if isinstance(result, db_models.Model):
        return 1
    if isinstance(result, list | set):
        return len(result)
    rows = getattr(result, "rows_affected", None)
    return rows if isinstance(rows, int) else None


def _json_safe(value, depth: int = 0):
    if depth > 3:
        return str(value)[:200]
    if value is None or isinstance(value, bool | int | float | str):
        return value if not isinstance(value, str) else value[:500]
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {str(k)[:100]: _json_safe(v, depth + 1) for k, v in list(value.items())[:50]}
    if isinstance(value, list | tuple | set):
        return [_json_safe(v, depth + 1) for v in list(value)[:50]]
    if isinstance(value, db_models.Model):
        return {"model": value._meta.label, "pk": value.pk}
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)[:200]


def _audit_failure(run: JobRun) -> None:
    from audit.services import audit_log

    try:
        audit_log(
            actor=None,
            actor_label=f"system:{run.job}",
            action="job.failed",
            resource_type="job_run",
            resource_id=run.pk,
            severity="error",
            success=False,
            details={"job": run.job, "period": run.period, "scope": run.scope, "error": run.error_summary[:500]},
        )
    except Exception:
        # The failure is already in JobRun and the log; a broken audit path must not hide it.
        logger.exception("could not audit the failure of job run %s", run.pk)


def _finish(run: JobRun, outcome: str, *, error: str = "", rows: int | None = None, details=None) -> JobRun:
    run.outcome = outcome
    run.finished_at = timezone.now()
    run.error_summary = error
    run.rows_affected = rows
    if details is not None:
        run.details = details
    run.save(update_fields=["outcome", "finished_at", "error_summary", "rows_affected", "details"])
    return run


def job_runs_mark_abandoned(*, job: JobSpec, now) -> int:
    """Fails runs of ``job`` still "running" long after any attempt could have ended.

    A worker killed by the hard time limit, the OOM killer or a deploy never records an outcome;
    without this its row would read "running" forever. The bound covers every retry with its
    backoff, so a live run is never touched.
    """
    from datetime import timedelta

    from agentplatform.scheduling.locks import LOCK_MARGIN_SECONDS

    limit = job.time_limit or settings.JOBS_TIME_LIMIT
    bound = (settings.JOBS_MAX_RETRIES + 1) * (limit + settings.JOBS_RETRY_BACKOFF_MAX_SECONDS) + LOCK_MARGIN_SECONDS
    abandoned = JobRun.objects.filter(
        job=job.name,
        outcome__in=(JobOutcome.RUNNING, JobOutcome.RETRYING),
        started_at__lt=now - timedelta(seconds=bound),
    ).update(
        outcome=JobOutcome.FAILED,
        finished_at=now,
        error_summary="Abandoned: no outcome recorded within the time limits (worker killed or lost).",
    )
    if abandoned:
        logger.error("job %s: marked %d abandoned run(s) as failed", job.name, abandoned)
    return abandoned


def job_run(
    *,
    request: JobRequest,
    trigger: str = JobTrigger.SCHEDULE,
    task_id: str = "",
    retryable: bool = False,
    continues_retry: bool = False,
) -> JobRun:
    """Runs one job for one period with bookkeeping, lock and idempotency; returns its ``JobRun``.

    Raises ``TransientJobFailure`` only when ``retryable`` and the error is transient; every other
    outcome (success, failure, skip) is returned as the recorded row. ``continues_retry`` (a Celery
    retry) continues the row this job's ``task_id`` left in ``retrying``; no caller can name
    another row, so a run only ever writes its own.
    """
    token = None
    if get_request_id() is None:
        token = set_request_id(task_id or new_request_id())
    try:
        return _job_run(
            request=request, trigger=trigger, task_id=task_id, retryable=retryable, continues_retry=continues_retry
        )
    finally:
        if token is not None:
            reset_request_id(token)


def _own_retrying_run(*, job: str, task_id: str) -> JobRun | None:
    """The row an earlier attempt of this very task left to be retried (same job and task id)."""
    if not task_id:
        return None
    return (
        JobRun.objects.filter(job=job[:64], task_id=task_id[:64], outcome=JobOutcome.RETRYING).order_by("-pk").first()
    )


def _job_run(*, request: JobRequest, trigger: str, task_id: str, retryable: bool, continues_retry: bool) -> JobRun:
    now = timezone.now()
    scope = f"source={request.source_id}" if request.source_id is not None else ""
    job: JobSpec | None = None
    unknown: PlatformError | None = None
    try:
        job = job_get(request.job)
    except NotFound as exc:
        unknown = exc
    if job is not None and not job.tracked:
        # Untracked tickers run from their own task; a record of one would be misleading.
        unknown = ValidationFailed(f"Job {job.name!r} runs on every tick without a record; it has no run path.")
        job = None
    run = _own_retrying_run(job=request.job, task_id=task_id) if continues_retry else None
    if job is None:
        period = None
    elif run is not None and run.period_start is not None:
        # A retry continues its row's period, even when the backoff carried it past that period.
        period = periods.period_containing(job.period, run.period_start)
    else:
        period = job.period_for(day=request.day, now=now)

    if run is None:
        run = JobRun(
            job=request.job[:64],
            period=period.key if period else "",
            period_start=period.start if period else None,
            period_end=period.end if period else None,
            scope=scope,
            trigger=trigger,
            request_id=(get_request_id() or "")[:128],
            task_id=task_id[:64],
            started_at=now,
        )
    continuing = run.pk is not None
    run.attempts += 1
    run.outcome = JobOutcome.RUNNING
    run.save()
    if job is not None and not continuing:
        job_runs_mark_abandoned(job=job, now=now)

    if job is None or period is None:
        logger.error("job run %s: %s", run.pk, unknown)
        _finish(run, JobOutcome.FAILED, error=_summary(unknown))
        _audit_failure(run)
        return run

    lock = JobLock(
        job=job.name,
        period="*" if job.single_flight else period.key,
        scope=scope,
        ttl_seconds=job.time_limit or settings.JOBS_TIME_LIMIT,
        owner=task_id,
    )
    if not lock.acquire():
        logger.info("job %s %s%s: skipped, another run holds the lock", job.name, period.key, scope)
        what = "this job" if job.single_flight else "this job and period"
        return _finish(run, JobOutcome.SKIPPED, error=f"Another run of {what} is in progress (locked).")
    try:
        earlier = (
            JobRun.objects.filter(job=job.name, period=period.key, scope=scope, outcome=JobOutcome.SUCCESS)
            .exclude(pk=run.pk)
            .order_by("-finished_at")
            .first()
        )
        if earlier is not None and not request.force:
            return _finish(
                run,
                JobOutcome.SKIPPED,
                error=f"Already succeeded for this period (run {earlier.pk}); force a re-run to replace it.",
            )
        try:
            service = job.resolve()
        except JobUnavailable as exc:
            logger.warning("job %s is unavailable: %s", job.name, exc)
            return _finish(run, JobOutcome.SKIPPED, error=_summary(exc), details={"unavailable": True})
        kwargs = job.service_kwargs(service, period=period, now=now, source_id=request.source_id)
        result = service(**kwargs)
    except SoftTimeLimitExceeded as exc:
        logger.error("job %s %s exceeded its soft time limit", job.name, period.key)
        _finish(run, JobOutcome.FAILED, error=_summary(exc) or "SoftTimeLimitExceeded")
        _audit_failure(run)
        return run
    except Exception as exc:
        if retryable and is_transient(exc):
            logger.warning("job %s %s: transient error, will retry: %s", job.name, period.key, _summary(exc))
            run.outcome = JobOutcome.RETRYING
            run.error_summary = _summary(exc)
            run.save(update_fields=["outcome", "error_summary"])
            raise TransientJobFailure(run.pk, exc) from exc
        logger.exception("job %s %s failed", job.name, period.key)
        _finish(run, JobOutcome.FAILED, error=_summary(exc))
        _audit_failure(run)
        return run
    finally:
        lock.release()
    logger.info("job %s %s%s succeeded", job.name, period.key, scope)
    details = _json_safe(result) if isinstance(result, dict) else {"result": _json_safe(result)}
    return _finish(run, JobOutcome.SUCCESS, rows=_rows_affected(result), details=details)


def worker_available() -> bool:
    """Whether a queued job will be picked up: always with a real broker, else only if a worker beats.

    Redis (or any server broker) keeps the message until a worker takes it, so queueing is right
    even when every worker is momentarily down. The embedded brokers (``filesystem://`` under
    ``make run``, ``memory://`` in tests) are served by at most the local ``make run`` worker, which
    proves it is alive by running the ``platform.heartbeat`` task every minute: a heartbeat younger
    than ``JOBS_EMBEDDED_WORKER_MAX_AGE`` seconds means a worker is consuming.
    """
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return True
    broker = settings.CELERY_BROKER_URL
    if not broker.startswith(("filesystem", "memory")):
        return True
    import time

    from django.core.cache import cache

    from agentplatform.probes import HEARTBEAT_CACHE_KEY

    last = cache.get(HEARTBEAT_CACHE_KEY)
    return last is not None and time.time() - last < settings.JOBS_EMBEDDED_WORKER_MAX_AGE


def job_enqueue(*, request: JobRequest, trigger: str = JobTrigger.ADMIN, actor=None) -> JobRun | None:
    """Queues a run ("run now"); runs it in-process when no worker would pick it up.

    Returns the ``JobRun`` when it ran in-process, ``None`` when it was queued. The trigger travels
    in a message header, never in the task's arguments (which a schedule can also set).
    """
    from agentplatform.scheduling.tasks import JOB_TASKS, TRIGGER_HEADER, run_job_task
    from audit.services import audit_log

    job = job_get(request.job)
    if not job.tracked:
        raise ValidationFailed(
            f"Job {job.name!r} runs on every tick without a record: run its periodic task instead.",
            details={"job": job.name},
        )
    audit_log(
        actor=actor,
        action="job.run_requested",
        resource_type="job",
        resource_id=job.name,
        details={**request.as_task_kwargs(), "trigger": trigger},
    )
    if worker_available():
        kwargs = request.as_task_kwargs()
        headers = {TRIGGER_HEADER: trigger}
        task = JOB_TASKS.get(job.name)
        if task is None:  # a job put in the registry without register_job (tests): the generic task
            run_job_task.apply_async(kwargs=kwargs, headers=headers)
        else:
            del kwargs["job"]
            task.apply_async(kwargs=kwargs, headers=headers)
        return None
    return job_run(request=request, trigger=trigger)
