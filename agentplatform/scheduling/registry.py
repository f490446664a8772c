"""The jobs of every app, declared in ``<app>/jobs.py`` with ``register_job``.

``register_job(name, fn, schedule=..., period=...)`` is the one way to schedule work: it records a
``JobSpec``, builds the job's Celery task (``jobs.<name>``, carrying its time limits) and gives the
job its default beat schedule, installed after ``migrate`` by ``agentplatform.scheduling.schedules``.
``AgentPlatformConfig.ready`` imports every installed app's ``jobs`` module, so web, worker and
beat processes all know the same jobs, and an app that is not installed has none.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

from django.core.exceptions import ImproperlyConfigured

from agentplatform.errors import NotFound, PlatformError
from agentplatform.scheduling import periods
from agentplatform.scheduling.periods import Period


class JobUnavailable(PlatformError):
    status_code = 503
    code = "job_unavailable"
    default_message = "The service this job calls is not installed."


@dataclass(frozen=True)
class Every:
    """A beat interval: every ``seconds`` seconds."""

    seconds: int

    def __str__(self) -> str:
        return f"every {self.seconds // 60} min" if self.seconds % 60 == 0 else f"every {self.seconds} s"


@dataclass(frozen=True)
class Crontab:
    """A beat crontab, in UTC (``CELERY_TIMEZONE``); fields as in django-celery-beat's CrontabSchedule."""

    minute: str = "0"
    hour: str = "*"
    day_of_month: str = "*"
    month_of_year: str = "*"
    day_of_week: str = "*"

    def __str__(self) -> str:
        fields = (self.minute, self.hour, self.day_of_month, self.month_of_year, self.day_of_week)
        return f"cron {' '.join(fields)} UTC"


@dataclass(frozen=True)
class JobSpec:
    """What ``register_job`` records about one job (its runs are ``reports.models.JobRun`` rows)."""

    name: str
    # The callable the job runs, or its dotted path, imported when a run needs it (a service whose
    # module is missing makes the job unavailable instead of breaking start-up).
    service: Callable | str
    # The period one run covers (``periods.MINUTE`` …), which keys its lock and idempotency. None:
    # an untracked ticker (the heartbeat, the exposure flush): its task calls ``service`` on every
    # tick with no JobRun row, lock or idempotency, because a row every few seconds would be noise.
    period: str | None
    description: str = ""
    # Scheduled runs of reporting jobs cover the last *complete* period.
    completed_period: bool = False
    # The default beat schedule; None = run on demand only.
    schedule: Every | Crontab | None = None
    # One run at a time whatever the period: a slow run must not overlap the next tick's (two
    # sealing runs racing on the chain, two collections fetching the same due source).
    single_flight: bool = False
    # Seconds. None = the task defaults (JOBS_SOFT_TIME_LIMIT / JOBS_TIME_LIMIT).
    soft_time_limit: int | None = None
    time_limit: int | None = None
    # The app label that declared the job (shown by ``run_job --list``).
    app: str = ""
    # The periodic task's name and the Celery task's name; default the job name and ``jobs.<name>``.
    schedule_name: str = ""
    task_name: str = ""

    def __post_init__(self) -> None:
        if self.period is not None and self.period not in periods.KINDS:
            raise ImproperlyConfigured(f"job {self.name}: unknown period {self.period!r}")
        object.__setattr__(self, "schedule_name", self.schedule_name or self.name)
        object.__setattr__(self, "task_name", self.task_name or f"jobs.{self.name}")
        if not self.description and callable(self.service):
            doc = inspect.getdoc(self.service) or ""
            object.__setattr__(self, "description", doc.split("\n", 1)[0])

    @property
    def tracked(self) -> bool:
        """Whether runs go through the runner (JobRun, lock, idempotency, retries)."""
        return self.period is not None

    @property
    def service_path(self) -> str:
        if isinstance(self.service, str):
            return self.service
        return f"{self.service.__module__}.{self.service.__qualname__}"

    def period_for(self, *, day: date | None, now: datetime) -> Period:
        if day is not None:
            return periods.period_for_day(self.period, day)
        current = periods.period_containing(self.period, now)
        return current.previous() if self.completed_period else current

    def resolve(self) -> Callable:
        """The service callable; raises ``JobUnavailable`` naming what is missing."""
        return self.service if callable(self.service) else _import_dotted(self.service)

    @property
    def available(self) -> bool:
        try:
            self.resolve()
        except JobUnavailable:
            return False
        return True

    def service_kwargs(self, service: Callable, *, period: Period, now: datetime, source_id: int | None) -> dict:
        """The keyword arguments the service accepts, from what a run knows.

        Services take some of ``now`` / ``day`` / ``start, end`` / ``source_id`` (keyword-only);
        the signature decides which, so a service can grow or drop one without touching the job.
        """
        # A run for a past period acts "as of" its end; a run for the current period, as of now.
        as_of = min(now, period.end)
        offered = {
            "now": as_of,
            "day": period.start.date(),
            "start": period.start,
            "end": period.end,
            "source_id": source_id,
        }
        parameters = inspect.signature(service).parameters
        return {name: value for name, value in offered.items() if name in parameters}


def _import_dotted(path: str):
    module_path, _, attribute = path.rpartition(".")
    try:
        module = importlib.import_module(module_path)
    except ImportError as exc:
        raise JobUnavailable(f"{path} is not installed ({exc}).", details={"service": path}) from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise JobUnavailable(f"{path} is not installed.", details={"service": path}) from None


def _app_label(module: str) -> str:
    from django.apps import apps

    config = apps.get_containing_app_config(module)
    return config.label if config is not None else module.split(".", 1)[0]


JOBS: dict[str, JobSpec] = {}


def register_job(
    name: str,
    fn: Callable | str,
    *,
    schedule: Every | Crontab | None,
    period: str | None,
    description: str = "",
    completed_period: bool = False,
    single_flight: bool = False,
    soft_time_limit: int | None = None,
    time_limit: int | None = None,
    schedule_name: str = "",
    task_name: str = "",
) -> JobSpec:
    """Declares a job (from its app's ``jobs.py``): its Celery task and its default schedule."""
    from agentplatform.scheduling.tasks import job_task

    module = fn if isinstance(fn, str) else fn.__module__
    spec = JobSpec(
        name=name,
        service=fn,
        period=period,
        description=description,
        completed_period=completed_period,
        schedule=schedule,
        single_flight=single_flight,
        soft_time_limit=soft_time_limit,
        time_limit=time_limit,
        app=_app_label(module),
        schedule_name=schedule_name,
        task_name=task_name,
    )
    if name in JOBS:
        raise ImproperlyConfigured(f"job {name!r} is registered twice ({JOBS[name].app} and {spec.app}).")
    for other in JOBS.values():
        if spec.task_name == other.task_name or spec.schedule_name == other.schedule_name:
            raise ImproperlyConfigured(f"jobs {other.name!r} and {name!r} share a task or schedule name.")
    JOBS[name] = spec
    job_task(spec)
    return spec


def job_get(name: str) -> JobSpec:
    """The registered job called ``name``; raises ``NotFound`` listing the known names."""
    try:
        return JOBS[name]
    except KeyError:
        raise NotFound(
            f"Unknown job {name!r}. Known jobs: {', '.join(sorted(JOBS))}.", details={"jobs": sorted(JOBS)}
        ) from None


def job_for_task(task_name: str) -> JobSpec | None:
    """The job whose Celery task is ``task_name`` (what a periodic task names), if any."""
    for spec in JOBS.values():
        if spec.task_name == task_name:
            return spec
    return None
