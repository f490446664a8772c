"""Traces, spans and the model price table (docs/traces.md).

A ``Span`` is one OpenTelemetry span as an agent exported it, mapped from the GenAI semantic
conventions (``traces.mapping``) and priced (``traces.pricing``). A ``Trace`` holds the totals of
one agent's spans sharing a trace id, maintained as spans arrive in any order.

**Partitions.** On PostgreSQL both tables are partitioned by day (declarative range partitions,
created by ``traces.partitions``): spans by their start, traces by ``day`` (the UTC day of the
earliest span the trace's first batch held; it never moves). Retention drops whole partitions
instead of deleting rows. A partitioned table's primary key must hold the partition key, so the
database's key is ``(id, start_time)`` / ``(id, day)`` while Django addresses rows by ``id`` alone
(an identity column, unique by construction). On SQLite (the embedded mode) they are plain tables.

**Idempotency.** A span is stored once per (agent, trace id, span id, start): an exporter re-sending
a batch after a lost answer re-sends the same start, so its spans count as duplicates.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class SpanStatus(models.TextChoices):
    UNSET = "unset", "Unset"
    OK = "ok", "OK"
    ERROR = "error", "Error"


class SpanKind(models.TextChoices):
    INTERNAL = "internal", "Internal"
    SERVER = "server", "Server"
    CLIENT = "client", "Client"
    PRODUCER = "producer", "Producer"
    CONSUMER = "consumer", "Consumer"
    UNSPECIFIED = "unspecified", "Unspecified"


# Money: per-span costs are tiny (a few millionths of a dollar), totals can be large.
COST_FIELD = {"max_digits": 20, "decimal_places": 10}


class TokenCounts(models.Model):
    """The token counts a span reports and a trace sums (GenAI conventions: cache reads and writes
    are part of the input count, reasoning tokens part of the output count)."""

    input_tokens = models.BigIntegerField(null=True, blank=True)
    output_tokens = models.BigIntegerField(null=True, blank=True)
    cache_read_tokens = models.BigIntegerField(null=True, blank=True)
    cache_write_tokens = models.BigIntegerField(null=True, blank=True)
    reasoning_tokens = models.BigIntegerField(null=True, blank=True)
    cost = models.DecimalField(null=True, blank=True, help_text="USD unless the price says otherwise.", **COST_FIELD)

    class Meta:
        abstract = True


class Span(TokenCounts):
    id = models.BigAutoField(primary_key=True)
    trace_id = models.CharField(max_length=32, help_text="32 lowercase hex digits.")
    span_id = models.CharField(max_length=16, help_text="16 lowercase hex digits.")
    parent_span_id = models.CharField(max_length=16, blank=True, default="")
    # The agent (API-key user) that exported it. No database constraint: a partitioned table would
    # hold a key per partition, and a deleted agent's spans age out with their partitions.
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+", db_index=False
    )
    name = models.CharField(max_length=300)
    kind = models.CharField(max_length=16, choices=SpanKind.choices, default=SpanKind.INTERNAL)
    start_time = models.DateTimeField()
    end_time = models.DateTimeField()
    duration_ms = models.FloatField()
    status = models.CharField(max_length=8, choices=SpanStatus.choices, default=SpanStatus.UNSET)
    status_message = models.CharField(max_length=500, blank=True, default="")
    # GenAI semantic conventions (traces.mapping): what the span did and with which model.
    operation = models.CharField(max_length=64, blank=True, default="", help_text="gen_ai.operation.name")
    provider = models.CharField(max_length=64, blank=True, default="", help_text="gen_ai.provider.name")
    request_model = models.CharField(max_length=200, blank=True, default="")
    response_model = models.CharField(max_length=200, blank=True, default="")
    tool_name = models.CharField(max_length=200, blank=True, default="")
    tool_call_id = models.CharField(max_length=200, blank=True, default="")
    agent_name = models.CharField(max_length=200, blank=True, default="", help_text="gen_ai.agent.name")
    conversation_id = models.CharField(max_length=200, blank=True, default="")
    error_type = models.CharField(max_length=200, blank=True, default="")
    user_id = models.CharField(max_length=200, blank=True, default="")
    prompt_type = models.CharField(max_length=100, blank=True, default="", help_text="agentops.prompt")
    experiment_id = models.BigIntegerField(null=True, blank=True)
    variant_id = models.BigIntegerField(null=True, blank=True)
    prompt_version_id = models.BigIntegerField(null=True, blank=True)
    # Every other attribute of the span and its resource, capped (TRACE_ATTRIBUTES_MAX_BYTES).
    attributes = models.JSONField(default=dict, blank=True)
    # Messages (gen_ai.input.messages / output.messages, or older span events), only when
    # TRACE_STORE_CONTENT=1, capped and with secrets masked: {"input": [...], "output": [...]}.
    content = models.JSONField(null=True, blank=True)
    received_at = models.DateTimeField()

    class Meta:
        ordering = ["start_time"]
        constraints = [
            models.UniqueConstraint(
                fields=["agent", "trace_id", "span_id", "start_time"], name="traces_span_agent_trace_span"
            ),
        ]
        indexes = [
            models.Index(fields=["start_time"], name="traces_span_start"),
            models.Index(fields=["response_model", "start_time"], name="traces_span_model_start"),
        ]
        permissions = [("push_traces", "Can export OpenTelemetry traces")]

    def __str__(self) -> str:
        return f"{self.name} ({self.trace_id}/{self.span_id})"

    @property
    def model(self) -> str:
        """The model the span is priced by: the one that answered, else the one asked for."""
        return self.response_model or self.request_model


class Trace(TokenCounts):
    id = models.BigAutoField(primary_key=True)
    trace_id = models.CharField(max_length=32)
    day = models.DateField(help_text="Partition key: the UTC day the trace was first filed under.")
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+", db_index=False
    )
    user_id = models.CharField(max_length=200, blank=True, default="")
    root_span_name = models.CharField(max_length=300, blank=True, default="")
    start_time = models.DateTimeField()
    end_time = models.DateTimeField()
    duration_ms = models.FloatField()
    status = models.CharField(max_length=8, choices=SpanStatus.choices, default=SpanStatus.UNSET)
    span_count = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    llm_calls = models.PositiveIntegerField(default=0, help_text="Spans that called a model (chat, completion, …).")
    unpriced_spans = models.PositiveIntegerField(default=0, help_text="Model-calling spans with no matching price.")
    models_used = models.JSONField(default=list, blank=True)
    experiment_id = models.BigIntegerField(null=True, blank=True)
    variant_id = models.BigIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["-start_time"]
        constraints = [models.UniqueConstraint(fields=["agent", "trace_id", "day"], name="traces_trace_agent_trace")]
        indexes = [
            models.Index(fields=["start_time"], name="traces_trace_start"),
            models.Index(fields=["trace_id"], name="traces_trace_trace_id"),
            models.Index(fields=["agent", "start_time"], name="traces_trace_agent_start"),
            models.Index(fields=["experiment_id", "variant_id", "user_id"], name="traces_trace_experiment"),
            # The list's "user" filter, newest first: without it a rare user meant walking the whole
            # start-time index of every partition for one page.
            models.Index(fields=["user_id", "start_time"], name="traces_trace_user_start"),
        ]
        permissions = [
            ("view_own_trace", "Can read its own traces (agents)"),
            ("reprice_spans", "Can reprice spans after a price change"),
        ]

    def __str__(self) -> str:
        return self.trace_id


class ModelPrice(models.Model):
    """What a model costs per million tokens of each kind, from ``valid_from`` on.

    ``model`` is an exact name or a glob (``gpt-4.1*``); a span takes the price valid at its start
    whose provider matches (blank = any) and whose model matches, an exact name before a glob and a
    longer glob before a shorter one (``traces.pricing``).
    """

    provider = models.CharField(max_length=64, blank=True, default="", help_text="Blank matches any provider.")
    model = models.CharField(max_length=200, help_text="Exact name or a glob such as gpt-4.1*.")
    input_per_million = models.DecimalField(max_digits=14, decimal_places=6)
    cached_input_per_million = models.DecimalField(
        max_digits=14, decimal_places=6, null=True, blank=True, help_text="Blank: cache reads cost the input price."
    )
    cache_write_per_million = models.DecimalField(
        max_digits=14, decimal_places=6, null=True, blank=True, help_text="Blank: cache writes cost the input price."
    )
    output_per_million = models.DecimalField(max_digits=14, decimal_places=6)
    reasoning_per_million = models.DecimalField(
        max_digits=14, decimal_places=6, null=True, blank=True, help_text="Blank: reasoning costs the output price."
    )
    currency = models.CharField(max_length=3, default="USD")
    valid_from = models.DateTimeField()
    note = models.CharField(max_length=300, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["provider", "model", "-valid_from"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "model", "valid_from"], name="traces_modelprice_unique"),
        ]

    def __str__(self) -> str:
        who = f"{self.provider}/" if self.provider else ""
        return f"{who}{self.model} from {self.valid_from:%Y-%m-%d}"


class RepriceJob(models.Model):
    """A "reprice spans since <date>" run: its progress is visible in the admin while it works."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    since = models.DateTimeField()
    state = models.CharField(max_length=8, choices=State.choices, default=State.PENDING)
    spans_total = models.BigIntegerField(default=0)
    spans_done = models.BigIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"reprice since {self.since:%Y-%m-%d} ({self.state})"
