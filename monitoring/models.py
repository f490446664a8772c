"""Monitoring data: rolled-up latency histograms, agent runs, system snapshots, process heartbeats.

Open (current) minutes live in the shared store (Redis, or ``CounterCell`` rows in the embedded
mode); ``metrics_rollup`` moves closed minutes into ``OperationMinute``, ``OperationHour`` and ``OperationDay``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class HistogramRow(models.Model):
    """One operation's latency histogram over one period (see ``monitoring.sketch``)."""

    operation = models.CharField(max_length=200)
    count = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    duration_sum_ms = models.FloatField(default=0.0)
    # {"<bucket index>": count}: keys are DDSketch bucket indices (strings, as JSON requires).
    buckets = models.JSONField(default=dict)

    class Meta:
        abstract = True

    @property
    def error_rate(self) -> float:
        return self.errors / self.count if self.count else 0.0


class OperationMinute(HistogramRow):
    minute = models.DateTimeField(help_text="Start of the minute (UTC).")

    class Meta:
        ordering = ["-minute", "operation"]
        constraints = [models.UniqueConstraint(fields=["operation", "minute"], name="monitoring_opminute_unique")]
        indexes = [models.Index(fields=["minute"], name="monitoring_opminute_minute")]
        permissions = [
            ("push_metrics", "Can push operation metrics and agent runs"),
            ("view_metrics", "Can read monitoring summaries and the dashboard"),
        ]

    def __str__(self) -> str:
        return f"{self.operation} @ {self.minute:%Y-%m-%d %H:%M}"


class OperationHour(HistogramRow):
    hour = models.DateTimeField(help_text="Start of the hour (UTC).")

    class Meta:
        ordering = ["-hour", "operation"]
        constraints = [models.UniqueConstraint(fields=["operation", "hour"], name="monitoring_ophour_unique")]
        indexes = [models.Index(fields=["hour"], name="monitoring_ophour_hour")]

    def __str__(self) -> str:
        return f"{self.operation} @ {self.hour:%Y-%m-%d %H:00}"


class OperationDay(HistogramRow):
    """Whole days, so a week-long summary sums a handful of rows (see ``selectors.window_plan``)."""

    day = models.DateTimeField(help_text="Start of the day (UTC).")

    class Meta:
        ordering = ["-day", "operation"]
        constraints = [models.UniqueConstraint(fields=["operation", "day"], name="monitoring_opday_unique")]
        indexes = [models.Index(fields=["day"], name="monitoring_opday_day")]

    def __str__(self) -> str:
        return f"{self.operation} @ {self.day:%Y-%m-%d}"


class CounterCell(models.Model):
    """The embedded store: one counter of a shared hash, incremented with UPSERT by any process.

    Mirrors a Redis hash field (``key``/``field``) so the embedded mode and Redis share one model of
    the data; used only when no Redis is configured.
    """

    key = models.CharField(max_length=300)
    field = models.CharField(max_length=300)
    value = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["key", "field"], name="monitoring_countercell_unique")]

    def __str__(self) -> str:
        return f"{self.key}[{self.field}]={self.value}"


class SeenEvent(models.Model):
    """Event ids already counted (embedded store only; Redis keeps them with a TTL)."""

    # "<submitter id>:<event_id>": the caller's id of up to 100 characters, scoped by who sent it.
    event_id = models.CharField(max_length=128, primary_key=True)
    seen_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return self.event_id


class RolledClaim(models.Model):
    """Ledger of Redis minute hashes already added to the database: a re-run must not add twice."""

    claim_id = models.CharField(max_length=64, primary_key=True)
    rolled_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return self.claim_id


class AgentRun(models.Model):
    class Outcome(models.TextChoices):
        SUCCESS = "success", "Success"
        FAILURE = "failure", "Failure"
        ABORTED = "aborted", "Aborted"

    # Unique per submitter (see Meta): one agent can neither pre-empt nor overwrite another's runs.
    run_id = models.CharField(max_length=100)
    agent = models.CharField(max_length=100)
    workflow = models.CharField(max_length=100)
    steps = models.PositiveIntegerField()
    retry_count = models.PositiveIntegerField()
    no_progress_count = models.PositiveIntegerField()
    critic_score = models.FloatField(null=True, blank=True)
    tokens = models.PositiveBigIntegerField()
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True)
    # No index of its own: the unique (submitted_by, run_id) constraint leads with it.
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )

    class Meta:
        ordering = ["-finished_at"]
        constraints = [
            models.UniqueConstraint(fields=["submitted_by", "run_id"], name="monitoring_agentrun_submitter_run"),
        ]
        indexes = [
            models.Index(fields=["finished_at"], name="monitoring_agentrun_finished"),
            models.Index(fields=["agent", "workflow", "finished_at"], name="monitoring_agentrun_agent_wf"),
        ]

    def __str__(self) -> str:
        return f"{self.agent}/{self.workflow} {self.run_id}"

    @property
    def duration_seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()


class SystemSnapshot(models.Model):
    taken_at = models.DateTimeField(db_index=True)
    hostname = models.CharField(max_length=200)
    cpu_percent = models.FloatField(help_text="Host CPU use since the previous snapshot (%).")
    load_1 = models.FloatField()
    load_5 = models.FloatField()
    load_15 = models.FloatField()
    memory_total_bytes = models.BigIntegerField()
    memory_used_bytes = models.BigIntegerField()
    memory_percent = models.FloatField()
    disk_total_bytes = models.BigIntegerField()
    disk_used_bytes = models.BigIntegerField()
    disk_percent = models.FloatField()
    net_bytes_sent = models.BigIntegerField(help_text="Cumulative since boot.")
    net_bytes_recv = models.BigIntegerField(help_text="Cumulative since boot.")
    process_count = models.PositiveIntegerField()
    # [{"kind": "web"|"worker", "hostname", "pid", "rss_bytes", "seen_at"}] from recent heartbeats.
    processes = models.JSONField(default=list)
    # {"queue name": messages waiting} read from the broker.
    queues = models.JSONField(default=dict)

    class Meta:
        ordering = ["-taken_at"]

    def __str__(self) -> str:
        return f"{self.hostname} @ {self.taken_at:%Y-%m-%d %H:%M:%S}"


class ProcessHeartbeat(models.Model):
    """Each web and worker process reports its own memory here every few seconds."""

    name = models.CharField(max_length=200, primary_key=True, help_text="kind:hostname:pid")
    kind = models.CharField(max_length=16)
    hostname = models.CharField(max_length=200)
    pid = models.PositiveIntegerField()
    rss_bytes = models.BigIntegerField()
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return self.name
