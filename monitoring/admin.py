"""Admin: read-only views of the monitoring rows, CSV exports, and the dashboard (``get_urls``)."""

from __future__ import annotations

from functools import partial

from django.contrib import admin
from django.urls import path

from audit.exports import stream_csv
from monitoring.dashboard import dashboard_view
from monitoring.models import AgentRun, OperationHour, OperationMinute, ProcessHeartbeat, SystemSnapshot
from monitoring.sketch import quantiles


class ReadOnlyAdmin(admin.ModelAdmin):
    """Monitoring rows are written by the platform, never edited by hand."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser


def _percentiles(row) -> tuple:
    buckets = {int(index): count for index, count in row.buckets.items()}
    return tuple(None if value is None else round(value, 3) for value in quantiles(buckets, (0.5, 0.95, 0.99)))


class HistogramAdmin(ReadOnlyAdmin):
    period_field = "minute"
    list_filter = ("operation",)
    search_fields = ("operation",)
    actions = ["export_csv"]
    show_full_result_count = False

    @admin.display(description="p50 / p95 / p99 (ms)")
    def percentiles(self, obj) -> str:
        return " / ".join("-" if value is None else f"{value:g}" for value in _percentiles(obj))

    @admin.display(description="error rate")
    def error_rate_display(self, obj) -> str:
        return f"{obj.error_rate:.2%}"

    @admin.action(description="Export selected rows as CSV", permissions=["view"])
    def export_csv(self, request, queryset):
        period = self.period_field
        header = [
            "operation",
            period,
            "count",
            "errors",
            "error_rate",
            "p50_ms",
            "p95_ms",
            "p99_ms",
            "mean_ms",
        ]

        def rows():
            for row in queryset.order_by(period, "operation").iterator(chunk_size=2000):
                p50, p95, p99 = _percentiles(row)
                mean = round(row.duration_sum_ms / row.count, 3) if row.count else None
                yield [
                    row.operation,
                    getattr(row, period).isoformat(),
                    row.count,
                    row.errors,
                    row.error_rate,
                    p50,
                    p95,
                    p99,
                    mean,
                ]

        return stream_csv(rows(), header, filename=f"operations-per-{period}.csv")


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
class AgentRunAdmin(ReadOnlyAdmin):
    list_display = (
        "run_id",
        "agent",
        "workflow",
        "outcome",
        "steps",
        "retry_count",
        "no_progress_count",
        "critic_score",
        "finished_at",
        "submitted_by",
    )
    list_select_related = ("submitted_by",)
    list_filter = ("outcome", "agent", "workflow")
    search_fields = ("run_id", "agent", "workflow")
    date_hierarchy = "finished_at"
    actions = ["export_csv"]
    show_full_result_count = False

    @admin.action(description="Export selected runs as CSV", permissions=["view"])
    def export_csv(self, request, queryset):
        fields = [
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
            "submitted_by__username",
        ]
        header = [*fields[:-1], "submitted_by"]  # the submitter's username
        return stream_csv(queryset.order_by("finished_at").values_list(*fields), header, filename="agent-runs.csv")


@admin.register(SystemSnapshot)
class SystemSnapshotAdmin(ReadOnlyAdmin):
    list_display = ("taken_at", "hostname", "cpu_percent", "memory_percent", "disk_percent", "load_1", "process_count")
    list_filter = ("hostname",)
    date_hierarchy = "taken_at"
    actions = ["export_csv"]
    show_full_result_count = False

    @admin.action(description="Export selected snapshots as CSV", permissions=["view"])
    def export_csv(self, request, queryset):
        fields = [
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
        ]
        return stream_csv(queryset.order_by("taken_at").values_list(*fields), fields, filename="system-snapshots.csv")


@admin.register(ProcessHeartbeat)
class ProcessHeartbeatAdmin(ReadOnlyAdmin):
    list_display = ("name", "kind", "hostname", "pid", "rss_mib", "started_at", "seen_at")
    list_filter = ("kind", "hostname")

    @admin.display(description="RSS (MiB)", ordering="rss_bytes")
    def rss_mib(self, obj) -> str:
        return f"{obj.rss_bytes / 1048576:.1f}"
