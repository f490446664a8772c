"""Admin: data sources (with "collect now"), collected documents (CSV export), provider health."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import models
from django.template.response import TemplateResponse
from django.urls import path

from agentplatform.admin import CsvExportMixin, ReadOnlyModelAdmin
from audit.services import audit_log
from enrichment.health import provider_health
from enrichment.models import CollectedDocument, DataSource


@admin.register(DataSource)
class DataSourceAdmin(admin.ModelAdmin):
    # A URL typed without a scheme is read as https (Django 6's default; 5.x warns without it).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = ("name", "kind", "active", "schedule", "last_run_at", "last_success_at", "consecutive_failures")
    list_filter = ("active", "kind")
    search_fields = ("name", "url")
    readonly_fields = (
        "last_run_at",
        "last_success_at",
        "last_error",
        "consecutive_failures",
        "created_at",
        "updated_at",
    )
    actions = ["collect_now"]
    change_list_template = "admin/enrichment/datasource/change_list.html"

    @admin.action(description="Collect now (queued)", permissions=["collect"])
    def collect_now(self, request, queryset):
        from enrichment.tasks import collect_sources_task

        for source in queryset:
            collect_sources_task.delay(source_id=source.pk)
            audit_log(
                actor=request.user,
                action="datasource.collection_requested",
                resource_type="enrichment.datasource",
                resource_id=source.pk,
                request=request,
            )
        self.message_user(request, f"Collection queued for {queryset.count()} source(s).", messages.SUCCESS)

    def has_collect_permission(self, request) -> bool:
        return request.user.has_perm("enrichment.collect_datasource")

    def get_urls(self):
        own = [
            path(
                "provider-health/",
                self.admin_site.admin_view(self.provider_health_view),
                name="enrichment_provider_health",
            )
        ]
        return own + super().get_urls()

    def provider_health_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": "Enrichment provider health",
            "providers": provider_health(),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/enrichment/provider_health.html", context)


@admin.register(CollectedDocument)
class CollectedDocumentAdmin(CsvExportMixin, ReadOnlyModelAdmin):
    """Documents come from collection only; staff read, export and (with the permission) delete them."""

    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    deletable_by = "permission"
    list_display = ("title", "source", "url", "fetched_at")
    list_filter = ("source",)
    search_fields = ("title", "url")
    date_hierarchy = "fetched_at"
    list_select_related = ("source",)
    csv_columns = ("id", "source", "url", "title", "text", "content_hash", "fetched_at")
    csv_filename = "collected-documents.csv"

    def csv_rows(self, request, queryset):
        return queryset.select_related("source").order_by("pk")

    def csv_cells(self, document: CollectedDocument) -> tuple:
        return (
            document.pk,
            document.source.name,
            document.url,
            document.title,
            document.text,
            document.content_hash,
            document.fetched_at,
        )

    def csv_exported(self, request, queryset, *, scope: str) -> None:
        audit_log(
            actor=request.user,
            action="collecteddocument.exported",
            resource_type="enrichment.collecteddocument",
            details={"count": queryset.count()},
            request=request,
        )
