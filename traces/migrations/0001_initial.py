"""Traces, spans, model prices and reprice runs; spans and traces partitioned by day on PostgreSQL."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from agentplatform.migration_ops import CreatePartitionedModel


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="ModelPrice",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "provider",
                    models.CharField(blank=True, default="", help_text="Blank matches any provider.", max_length=64),
                ),
                ("model", models.CharField(help_text="Exact name or a glob such as gpt-4.1*.", max_length=200)),
                ("input_per_million", models.DecimalField(decimal_places=6, max_digits=14)),
                (
                    "cached_input_per_million",
                    models.DecimalField(
                        blank=True,
                        decimal_places=6,
                        help_text="Blank: cache reads cost the input price.",
                        max_digits=14,
                        null=True,
                    ),
                ),
                (
                    "cache_write_per_million",
                    models.DecimalField(
                        blank=True,
                        decimal_places=6,
                        help_text="Blank: cache writes cost the input price.",
                        max_digits=14,
                        null=True,
                    ),
                ),
                ("output_per_million", models.DecimalField(decimal_places=6, max_digits=14)),
                (
                    "reasoning_per_million",
                    models.DecimalField(
                        blank=True,
                        decimal_places=6,
                        help_text="Blank: reasoning costs the output price.",
                        max_digits=14,
                        null=True,
                    ),
                ),
                ("currency", models.CharField(default="USD", max_length=3)),
                ("valid_from", models.DateTimeField()),
                ("note", models.CharField(blank=True, default="", max_length=300)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={
                "ordering": ["provider", "model", "-valid_from"],
                "constraints": [
                    models.UniqueConstraint(fields=("provider", "model", "valid_from"), name="traces_modelprice_unique")
                ],
            },
        ),
        migrations.CreateModel(
            name="RepriceJob",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("since", models.DateTimeField()),
                (
                    "state",
                    models.CharField(
                        choices=[
                            ("pending", "Pending"),
                            ("running", "Running"),
                            ("done", "Done"),
                            ("failed", "Failed"),
                        ],
                        default="pending",
                        max_length=8,
                    ),
                ),
                ("spans_total", models.BigIntegerField(default=0)),
                ("spans_done", models.BigIntegerField(default=0)),
                ("error", models.TextField(blank=True, default="")),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                (
                    "requested_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at"],
            },
        ),
        CreatePartitionedModel(
            name="Span",
            fields=[
                ("input_tokens", models.BigIntegerField(blank=True, null=True)),
                ("output_tokens", models.BigIntegerField(blank=True, null=True)),
                ("cache_read_tokens", models.BigIntegerField(blank=True, null=True)),
                ("cache_write_tokens", models.BigIntegerField(blank=True, null=True)),
                ("reasoning_tokens", models.BigIntegerField(blank=True, null=True)),
                (
                    "cost",
                    models.DecimalField(
                        blank=True,
                        decimal_places=10,
                        help_text="USD unless the price says otherwise.",
                        max_digits=20,
                        null=True,
                    ),
                ),
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("trace_id", models.CharField(help_text="32 lowercase hex digits.", max_length=32)),
                ("span_id", models.CharField(help_text="16 lowercase hex digits.", max_length=16)),
                ("parent_span_id", models.CharField(blank=True, default="", max_length=16)),
                ("name", models.CharField(max_length=300)),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("internal", "Internal"),
                            ("server", "Server"),
                            ("client", "Client"),
                            ("producer", "Producer"),
                            ("consumer", "Consumer"),
                            ("unspecified", "Unspecified"),
                        ],
                        default="internal",
                        max_length=16,
                    ),
                ),
                ("start_time", models.DateTimeField()),
                ("end_time", models.DateTimeField()),
                ("duration_ms", models.FloatField()),
                (
                    "status",
                    models.CharField(
                        choices=[("unset", "Unset"), ("ok", "OK"), ("error", "Error")],
                        default="unset",
                        max_length=8,
                    ),
                ),
                ("status_message", models.CharField(blank=True, default="", max_length=500)),
                (
                    "operation",
                    models.CharField(blank=True, default="", help_text="gen_ai.operation.name", max_length=64),
                ),
                (
                    "provider",
                    models.CharField(blank=True, default="", help_text="gen_ai.provider.name", max_length=64),
                ),
                ("request_model", models.CharField(blank=True, default="", max_length=200)),
                ("response_model", models.CharField(blank=True, default="", max_length=200)),
                ("tool_name", models.CharField(blank=True, default="", max_length=200)),
                ("tool_call_id", models.CharField(blank=True, default="", max_length=200)),
                (
                    "agent_name",
                    models.CharField(blank=True, default="", help_text="gen_ai.agent.name", max_length=200),
                ),
                ("conversation_id", models.CharField(blank=True, default="", max_length=200)),
                ("error_type", models.CharField(blank=True, default="", max_length=200)),
                ("user_id", models.CharField(blank=True, default="", max_length=200)),
                (
                    "prompt_type",
                    models.CharField(blank=True, default="", help_text="agentops.prompt", max_length=100),
                ),
                ("experiment_id", models.BigIntegerField(blank=True, null=True)),
                ("variant_id", models.BigIntegerField(blank=True, null=True)),
                ("prompt_version_id", models.BigIntegerField(blank=True, null=True)),
                ("attributes", models.JSONField(blank=True, default=dict)),
                ("content", models.JSONField(blank=True, null=True)),
                ("received_at", models.DateTimeField()),
                (
                    "agent",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["start_time"],
                "permissions": [("push_traces", "Can export OpenTelemetry traces")],
                "indexes": [
                    models.Index(fields=["start_time"], name="traces_span_start"),
                    models.Index(fields=["response_model", "start_time"], name="traces_span_model_start"),
                ],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("agent", "trace_id", "span_id", "start_time"),
                        name="traces_span_agent_trace_span",
                    )
                ],
            },
            partition_key="start_time",
        ),
        CreatePartitionedModel(
            name="Trace",
            fields=[
                ("input_tokens", models.BigIntegerField(blank=True, null=True)),
                ("output_tokens", models.BigIntegerField(blank=True, null=True)),
                ("cache_read_tokens", models.BigIntegerField(blank=True, null=True)),
                ("cache_write_tokens", models.BigIntegerField(blank=True, null=True)),
                ("reasoning_tokens", models.BigIntegerField(blank=True, null=True)),
                (
                    "cost",
                    models.DecimalField(
                        blank=True,
                        decimal_places=10,
                        help_text="USD unless the price says otherwise.",
                        max_digits=20,
                        null=True,
                    ),
                ),
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("trace_id", models.CharField(max_length=32)),
                (
                    "day",
                    models.DateField(help_text="Partition key: the UTC day the trace was first filed under."),
                ),
                ("user_id", models.CharField(blank=True, default="", max_length=200)),
                ("root_span_name", models.CharField(blank=True, default="", max_length=300)),
                ("start_time", models.DateTimeField()),
                ("end_time", models.DateTimeField()),
                ("duration_ms", models.FloatField()),
                (
                    "status",
                    models.CharField(
                        choices=[("unset", "Unset"), ("ok", "OK"), ("error", "Error")],
                        default="unset",
                        max_length=8,
                    ),
                ),
                ("span_count", models.PositiveIntegerField(default=0)),
                ("error_count", models.PositiveIntegerField(default=0)),
                (
                    "llm_calls",
                    models.PositiveIntegerField(
                        default=0, help_text="Spans that called a model (chat, completion, …)."
                    ),
                ),
                (
                    "unpriced_spans",
                    models.PositiveIntegerField(default=0, help_text="Model-calling spans with no matching price."),
                ),
                ("models_used", models.JSONField(blank=True, default=list)),
                ("experiment_id", models.BigIntegerField(blank=True, null=True)),
                ("variant_id", models.BigIntegerField(blank=True, null=True)),
                ("updated_at", models.DateTimeField()),
                (
                    "agent",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["-start_time"],
                "permissions": [
                    ("view_own_trace", "Can read its own traces (agents)"),
                    ("reprice_spans", "Can reprice spans after a price change"),
                ],
                "indexes": [
                    models.Index(fields=["start_time"], name="traces_trace_start"),
                    models.Index(fields=["trace_id"], name="traces_trace_trace_id"),
                    models.Index(fields=["agent", "start_time"], name="traces_trace_agent_start"),
                    models.Index(fields=["experiment_id", "variant_id", "user_id"], name="traces_trace_experiment"),
                ],
                "constraints": [
                    models.UniqueConstraint(fields=("agent", "trace_id", "day"), name="traces_trace_agent_trace")
                ],
            },
            partition_key="day",
        ),
    ]
