"""Admin: read-only views of the monitoring rows, CSV exports, and the dashboard (``get_urls``)."""

from __future__ import annotations

from functools import partial

from django.contrib import admin
from django.urls import path
from django.utils import timezone

from agentplatform.admin import CsvExportMixin, ReadOnlyModelAdmin
from monitoring.dashboard import dashboard_view
from monitoring.models import AgentRun, OperationHour, OperationMinute, ProcessHeartbeat, SystemSnapshot
from monitoring.sketch import quantiles


class ReadOnlyAdmin(ReadOnlyModelAdmin):
    """Monitoring rows are written by the platform, never edited by hand; superusers may trim them."""

    deletable_by = "superusers"


_PERCENTILE_COLUMNS = ("p50_ms", "p95_ms", "p99_ms")


def _percentiles(row) -> tuple:
    buckets = {int(index): count for index, count in row.buckets.items()}
    return tuple(None if value is None else round(value, 3) for value in quantiles(buckets, (0.5, 0.95, 0.99)))


class HistogramAdmin(CsvExportMixin, ReadOnlyAdmin):
    period_field = "minute"
    list_filter = ("operation",)
    search_fields = ("operation",)
    show_full_result_count = False

    @admin.display(description="p50 / p95 / p99 (ms)")
    def percentiles(self, obj) -> str:
        return " / ".join("-" if value is None else f"{value:g}" for value in _percentiles(obj))

    @admin.display(description="error rate")
    def error_rate_display(self, obj) -> str:
        return f"{obj.error_rate:.2%}"

    @property
    def csv_columns(self) -> tuple[str, ...]:
        return ("operation", self.period_field, "count", "errors", "error_rate", *_PERCENTILE_COLUMNS, "mean_ms")

    @property
    def csv_filename(self) -> str:
        return f"operations-per-{self.period_field}.csv"

    def csv_rows(self, request, queryset):
        period = self.period_field
        for row in queryset.order_by(period, "operation").iterator(chunk_size=2000):
            p50, p95, p99 = _percentiles(row)
            mean = round(row.duration_sum_ms / row.count, 3) if row.count else None
            yield [row.operation, getattr(row, period), row.count, row.errors, row.error_rate, p50, p95, p99, mean]


@admin.register(OperationMinute)
class OperationMinuteAdmin(HistogramAdmin):
    period_field = "minute"
    list_display = ("operation", "minute", "count", "errors", "error_rate_display", "percentiles")
    date_hierarchy = "minute"
    change_list_template = "monitoring/change_list_with_dashboard.html"

    def get_urls(self):
        dashboard = partial(dashboard_view, admin_site=self.admin_site)
        return [
            path("dashboard/", self.admin_site.admin_view(dashboard), name="monitoring_dashboard"),
            *super().get_urls(),
        ]


@admin.register(OperationHour)
class OperationHourAdmin(HistogramAdmin):
    period_field = "hour"
    list_display = ("operation", "hour", "count", "errors", "error_rate_display", "percentiles")
    date_hierarchy = "hour"


@admin.register(AgentRun)
class AgentRunAdmin(CsvExportMixin, ReadOnlyAdmin):
    # Eight short columns fit beside the navigation and the filters at 1,280 px; retries and
    # no-progress counts are on each run's page and in the CSV export.
    list_display = (
        "run_id",
        "agent",
        "workflow",
        "outcome",
        "steps",
        "critic",
        "finished",
        "sender",
    )
    list_select_related = ("submitted_by",)
    list_filter = ("outcome", "agent", "workflow")
    search_fields = ("run_id", "agent", "workflow")
    date_hierarchy = "finished_at"
    show_full_result_count = False
    csv_columns = (
        "run_id",
        "agent",
        "workflow",
        "outcome",
        "steps",
        "retry_count",
        "no_progress_count",
        "critic_score",
        "tokens",
        "started_at",
        "finished_at",
        "submitted_by",  # the submitter's username (csv_rows)
    )
    csv_filename = "agent-runs.csv"
    csv_ordering = ("finished_at",)

    @admin.display(description="Critic", ordering="critic_score")
    def critic(self, run: AgentRun):
        return run.critic_score

    @admin.display(description="Sender", ordering="submitted_by__username")
    def sender(self, run: AgentRun) -> str:
        return run.submitted_by.get_username() if run.submitted_by_id else "-"

    @admin.display(description="Finished", ordering="finished_at")
    def finished(self, run: AgentRun) -> str:
        return timezone.localtime(run.finished_at).strftime("%Y-%m-%d %H:%M") if run.finished_at else "-"

    def csv_rows(self, request, queryset):
        fields = [*self.csv_columns[:-1], "submitted_by__username"]
        return queryset.order_by(*self.csv_ordering).values_list(*fields)


@admin.register(SystemSnapshot)
class SystemSnapshotAdmin(CsvExportMixin, ReadOnlyAdmin):
    list_display = ("taken_at", "hostname", "cpu_percent", "memory_percent", "disk_percent", "load_1", "process_count")
    list_filter = ("hostname",)
    date_hierarchy = "taken_at"
    show_full_result_count = False
    csv_columns = (
        "taken_at",
        "hostname",
        "cpu_percent",
        "load_1",
        "load_5",
        "load_15",
        "memory_total_bytes",
        "memory_used_bytes",
        "memory_percent",
        "disk_total_bytes",
        "disk_used_bytes",
        "disk_percent",
        "net_bytes_sent",
        "net_bytes_recv",
        "process_count",
    )
    csv_filename = "system-snapshots.csv"
    csv_ordering = ("taken_at",)


@admin.register(ProcessHeartbeat)
class ProcessHeartbeatAdmin(ReadOnlyAdmin):
    list_display = ("name", "kind", "hostname", "pid", "rss_mib", "started_at", "seen_at")
    list_filter = ("kind", "hostname")

    @admin.display(description="RSS (MiB)", ordering="rss_bytes")
    def rss_mib(self, obj) -> str:
        return f"{obj.rss_bytes / 1048576:.1f}"
