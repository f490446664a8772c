"""The audit log in the admin: read-only for everyone, built to stay fast at 100 million rows.

- No ``COUNT(*)`` over the table: ``show_full_result_count = False``, no filter facets (Django's
  "Show counts" would count every choice of every filter), and a paginator that counts at most
  ``COUNT_CAP`` rows, falling back to PostgreSQL's planner estimate past that; the status line's
  "awaiting sealing" stops counting at ``COUNT_CAP`` too.
- Search touches indexed columns only, with exact or prefix matches (never ``ILIKE '%x%'``).
- The date hierarchy's year/month/day choices are found by one indexed existence probe per
  period instead of ``SELECT DISTINCT date_trunc(...)`` over every row.
- Exports (selected rows, or the whole filtered list) stream CSV and are themselves audited.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path

from django.conf import settings
from django.contrib import admin
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Max, Min, Q
from django.http import FileResponse, Http404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from agentplatform.admin import CsvExportMixin, ReadOnlyModelAdmin
from audit.models import AppendOnlyQuerySet, AuditCheckpoint, AuditEvent, AuditExport, AuditSealing, AuditVerification
from audit.retention import EXPORT_COLUMNS, export_cells
from audit.services import audit_log

# Rows the changelist counts exactly before it shows an estimate instead.
COUNT_CAP = 10_000


class EstimatedCountPaginator(Paginator):
    """Counts up to ``COUNT_CAP`` rows; beyond, PostgreSQL's row estimate (never a full count)."""

    @cached_property
    def count(self) -> int:
        bounded = self.object_list.order_by()[: COUNT_CAP + 1].count()
        if bounded <= COUNT_CAP or connection.vendor != "postgresql":
            return bounded
        return max(bounded, _planner_estimate(self.object_list))


def _planner_estimate(queryset) -> int:
    sql, params = queryset.order_by().values("id").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


class PeriodProbingQuerySet(AppendOnlyQuerySet):
    """``datetimes()`` by existence probes over the time index, for the admin's date hierarchy."""

    def datetimes(self, field_name, kind, order="ASC", tzinfo=None):
        bounds = self.aggregate(first=Min(field_name), last=Max(field_name))
        if not bounds["first"]:
            return []
        zone = tzinfo or timezone.get_current_timezone()
        current = _truncate(bounds["first"].astimezone(zone), kind)
        last = bounds["last"].astimezone(zone)
        found = []
        while current <= last:
            following = _next_period(current, kind)
            if self.filter(**{f"{field_name}__gte": current, f"{field_name}__lt": following}).exists():
                found.append(current)
            current = following
        return found if order == "ASC" else found[::-1]


def _truncate(moment: datetime, kind: str) -> datetime:
    moment = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if kind in ("year", "month"):
        moment = moment.replace(day=1)
    if kind == "year":
        moment = moment.replace(month=1)
    return moment


def _next_period(moment: datetime, kind: str) -> datetime:
    if kind == "year":
        return moment.replace(year=moment.year + 1)
    if kind == "month":
        return moment.replace(year=moment.year + moment.month // 12, month=moment.month % 12 + 1)
    return (moment + timedelta(days=1, hours=2)).replace(hour=0)  # DST-safe next midnight


class ActionFamilyFilter(admin.SimpleListFilter):
    """Filter by the entity part of the action (``experiment.*``); choices from recent events, cached."""

    title = "action family"
    parameter_name = "family"

    def lookups(self, request, model_admin):
        families = cache.get("audit:admin:families")
        if families is None:
            since = timezone.now() - timedelta(days=7)
            # A week of the (action, time) index, not the whole table; cached for ten minutes.
            actions = AuditEvent.objects.filter(occurred_at__gte=since).values_list("action", flat=True).distinct()
            families = sorted({action.split(".", 1)[0] for action in actions[:1000]})
            cache.set("audit:admin:families", families, 600)
        return [(family, family) for family in families]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(action__startswith=self.value() + ".")
        return queryset


class RecentFilter(admin.SimpleListFilter):
    title = "occurred"
    parameter_name = "recent"
    _windows = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}

    def lookups(self, request, model_admin):
        return [("1h", "Last hour"), ("24h", "Last 24 hours"), ("7d", "Last 7 days")]

    def queryset(self, request, queryset):
        if self.value() in self._windows:
            return queryset.filter(occurred_at__gte=timezone.now() - self._windows[self.value()])
        return queryset


@admin.register(AuditEvent)
class AuditEventAdmin(CsvExportMixin, ReadOnlyModelAdmin):
    list_display = ("occurred_at", "actor_label", "action", "severity_label", "success", "resource", "request_id")
    list_filter = ("severity", "success", RecentFilter, ActionFamilyFilter)
    date_hierarchy = "occurred_at"
    search_fields = ("actor_label",)  # the box is shown; get_search_results does the real work
    search_help_text = (
        "Exact match on actor, action, request id or event id; an action prefix ending in * "
        "(experiment.*); or type:id for a resource."
    )
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # ?_facets=1 would COUNT each filter choice over the table
    paginator = EstimatedCountPaginator
    list_per_page = 50
    ordering = ("-occurred_at", "-id")
    csv_columns = EXPORT_COLUMNS
    csv_ordering = ("-occurred_at", "-id")
    csv_cells = staticmethod(export_cells)
    change_list_template = "admin/audit/auditevent/change_list.html"
    fields = (
        "event_id",
        "occurred_at",
        "recorded_at",
        "actor_label",
        "actor",
        "action",
        "severity_label",
        "success",
        "resource_type",
        "resource_id",
        "request_id",
        "ip",
        "user_agent",
        "details_pretty",
        "chain_index",
        "prev_hash",
        "hash",
    )
    readonly_fields = fields

    def get_queryset(self, request):
        return PeriodProbingQuerySet(AuditEvent).select_related(None)

    @admin.display(description="severity", ordering="severity")
    def severity_label(self, obj):
        return obj.severity_name

    @admin.display(description="resource")
    def resource(self, obj):
        return f"{obj.resource_type}:{obj.resource_id}" if obj.resource_type else obj.resource_id

    @admin.display(description="details")
    def details_pretty(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.details, indent=2, sort_keys=True, ensure_ascii=False))

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        try:
            return queryset.filter(event_id=uuid.UUID(term)), False
        except ValueError:
            pass
        if term.endswith("*"):
            return queryset.filter(action__startswith=term[:-1]), False
        condition = Q(actor_label=term) | Q(action=term) | Q(request_id=term)
        resource_type, colon, resource_id = term.partition(":")
        if colon and resource_type:  # an empty type is in no index (audit_resource_idx is partial)
            condition |= Q(resource_type=resource_type, resource_id=resource_id)
        return queryset.filter(condition), False

    # --- exports -------------------------------------------------------------------------------

    def has_csv_export_permission(self, request) -> bool:
        return request.user.has_perm("audit.export_auditevent")

    @property
    def csv_filename(self) -> str:
        return f"audit-events-{timezone.now():%Y%m%dT%H%M%S}.csv"

    def csv_exported(self, request, queryset, *, scope: str) -> None:
        query = {key: value for key, value in request.GET.items() if key != "o"}
        audit_log(
            actor=request.user,
            action="audit.exported",
            resource_type="audit_event",
            details={"scope": scope, "filters": query},
            request=request,
        )

    def export_filtered_view(self, request):
        if not (self.has_view_permission(request) and self.has_csv_export_permission(request)):
            raise PermissionDenied
        changelist = self.get_changelist_instance(request)
        return self.csv_response(request, changelist.get_queryset(request), scope="filtered")

    def get_urls(self):
        extra = [
            path(
                "export/",
                self.admin_site.admin_view(self.export_filtered_view),
                name="audit_auditevent_export",
            )
        ]
        return extra + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "audit_status": audit_status(), "can_export": False}
        extra_context["can_export"] = self.has_csv_export_permission(request)
        return super().changelist_view(request, extra_context=extra_context)


def audit_status() -> dict:
    """The status line: last sealing, last verification, and how many events await sealing."""
    return {
        "sealing": AuditSealing.objects.order_by("-id").first(),
        "verification": AuditVerification.objects.order_by("-id").first(),
        # Counted on the partial index of unsealed rows, and no further than COUNT_CAP: a stalled
        # sealer leaves millions, and the status line must not count them on every page view.
        "pending": AuditEvent.objects.filter(chain_index__isnull=True).order_by()[: COUNT_CAP + 1].count(),
        "pending_cap": COUNT_CAP,
    }


@admin.register(AuditExport)
class AuditExportAdmin(ReadOnlyModelAdmin):
    list_display = ("created_at", "kind", "period_start", "period_end", "row_count", "size_bytes", "download")
    list_filter = ("kind",)
    date_hierarchy = None

    @admin.display(description="file")
    def download(self, obj):
        url = reverse("admin:audit_auditexport_download", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, Path(obj.path).name)

    def download_view(self, request, pk: int):
        if not request.user.has_perm("audit.export_auditevent"):
            raise PermissionDenied
        export = AuditExport.objects.filter(pk=pk).first()
        if export is None:
            raise Http404
        root = Path(settings.MEDIA_ROOT).resolve()
        file_path = (root / export.path).resolve()
        if root not in file_path.parents or not file_path.is_file():
            raise Http404
        audit_log(
            actor=request.user,
            action="audit.export_downloaded",
            resource_type="audit_export",
            resource_id=export.pk,
            details={"path": export.path},
            request=request,
        )
        return FileResponse(file_path.open("rb"), as_attachment=True, filename=file_path.name)

    def get_urls(self):
        extra = [
            path(
                "<int:pk>/download/",
                self.admin_site.admin_view(self.download_view),
                name="audit_auditexport_download",
            )
        ]
        return extra + super().get_urls()


@admin.register(AuditSealing)
class AuditSealingAdmin(ReadOnlyModelAdmin):
    list_display = ("sealed_at", "event_count", "first_chain_index", "last_chain_index", "head_hash")


@admin.register(AuditVerification)
class AuditVerificationAdmin(ReadOnlyModelAdmin):
    list_display = ("verified_at", "ok", "checked", "first_broken_event_id", "message")
    list_filter = ("ok",)


@admin.register(AuditCheckpoint)
class AuditCheckpointAdmin(ReadOnlyModelAdmin):
    list_display = ("created_at", "last_chain_index", "deleted_count", "archive")
