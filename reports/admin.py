"""Admin: job runs (filters, CSV export, run again), "run a job now", reports with charts and downloads.

django-celery-beat's periodic task admin is re-registered so that its actions check permissions
(enable / disable / toggle need ``change_periodictask``, run needs ``reports.run_job``), every change
goes through an audited service (``schedule.*``), and "run now" of a job goes through the same
``job_enqueue`` as everything else, so it runs in-process when no worker would take the job.
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django_celery_beat.admin import PeriodicTaskAdmin
from django_celery_beat.models import PeriodicTask

from agentplatform.admin import CsvExportMixin, ReadOnlyModelAdmin
from agentplatform.errors import PlatformError
from agentplatform.scheduling import periods
from agentplatform.scheduling.registry import JOBS, job_for_task, job_get
from agentplatform.scheduling.runner import JobRequest, job_enqueue
from agentplatform.scheduling.services import (
    schedule_delete,
    schedule_run_requested,
    schedule_save,
    schedules_set_enabled,
)
from reports import exports
from reports.charts import report_charts
from reports.models import JobOutcome, JobRun, JobTrigger, Report


def _enqueue_and_report(request, job_request: JobRequest) -> None:
    """Runs ``job_enqueue`` for the admin user and tells them what happened."""
    try:
        run = job_enqueue(request=job_request, trigger=JobTrigger.ADMIN, actor=request.user)
    except PlatformError as exc:
        messages.error(request, exc.message)
        return
    if run is None:
        messages.success(request, f"{job_request.job}: queued for a worker.")
    else:
        level = messages.ERROR if run.outcome == JobOutcome.FAILED else messages.SUCCESS
        text = f"{run.job} {run.period}: {run.outcome} (no worker is consuming the embedded broker, so it ran here)"
        messages.add_message(request, level, text + (f" — {run.error_summary}" if run.error_summary else ""))


class RunJobForm(forms.Form):
    job = forms.ChoiceField()
    date = forms.DateField(required=False, help_text="UTC day selecting the period; empty = the job's default.")
    source = forms.IntegerField(required=False, min_value=1, help_text="collect_sources only: one source id.")
    force = forms.BooleanField(required=False, help_text="Run again even if this period already succeeded.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["job"].choices = [
            (job.name, job.name if job.available else f"{job.name} (unavailable)")
            for job in JOBS.values()
            if job.tracked
        ]

    def clean(self):
        data = super().clean()
        if data.get("source") and data.get("job") != "collect_sources":
            raise forms.ValidationError("A source applies only to collect_sources.")
        return data


@admin.register(JobRun)
class JobRunAdmin(CsvExportMixin, ReadOnlyModelAdmin):
    list_display = (
        "job",
        "period",
        "scope",
        "outcome_badge",
        "trigger",
        "started_at",
        "duration",
        "attempts",
        "rows_affected",
        "short_error",
    )
    list_filter = ("outcome", "job", "trigger", ("started_at", admin.DateFieldListFilter))
    search_fields = ("job", "period", "error_summary", "request_id", "task_id")
    date_hierarchy = "started_at"
    list_per_page = 100
    actions = ("export_csv", "run_again")
    change_list_template = "reports/admin/jobrun_change_list.html"
    deletable_by = "permission"
    csv_columns = exports.JOBRUN_HEADER
    csv_filename = "job-runs.csv"
    csv_ordering = ("-started_at", "-id")
    csv_cells = staticmethod(exports.jobrun_cells)

    def csv_rows(self, request, queryset):
        return queryset.order_by(*self.csv_ordering)  # whole runs: jobrun_cells reads a property

    def has_run_permission(self, request) -> bool:
        return request.user.has_perm("reports.run_job")

    @admin.display(description="outcome", ordering="outcome")
    def outcome_badge(self, run: JobRun):
        colour = {"success": "#2e7d32", "failed": "#c62828", "skipped": "#757575", "retrying": "#ef6c00"}
        return format_html('<b style="color:{}">{}</b>', colour.get(run.outcome, "#1565c0"), run.outcome)

    @admin.display(description="seconds")
    def duration(self, run: JobRun):
        return run.duration_seconds

    @admin.display(description="error")
    def short_error(self, run: JobRun) -> str:
        return run.error_summary[:120]

    @admin.action(
        description="Run these jobs again now (same day/week/month period, replacing it)", permissions=["run"]
    )
    def run_again(self, request, queryset):
        for run in queryset.order_by("job", "period").distinct():
            try:
                job = job_get(run.job)
            except PlatformError as exc:
                messages.error(request, exc.message)
                continue
            # Minute and quarter-hour jobs work on "now"; re-running an old minute means nothing.
            same_period = job.period not in (periods.MINUTE, periods.QUARTER_HOUR) and run.period_start
            source_id = int(run.scope.removeprefix("source=")) if run.scope.startswith("source=") else None
            day = run.period_start.date() if same_period else None
            _enqueue_and_report(request, JobRequest(job=run.job, day=day, source_id=source_id, force=bool(day)))

    def get_urls(self):
        return [
            path("run/", self.admin_site.admin_view(self.run_view), name="reports_jobrun_run"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "can_run_jobs": self.has_run_permission(request)}
        return super().changelist_view(request, extra_context)

    def run_view(self, request):
        if not self.has_run_permission(request):
            raise PermissionDenied
        form = RunJobForm(request.POST or None, initial={"job": request.GET.get("job")})
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            _enqueue_and_report(
                request,
                JobRequest(job=data["job"], day=data["date"], source_id=data["source"], force=data["force"]),
            )
            return redirect("admin:reports_jobrun_changelist")
        context = {
            **self.admin_site.each_context(request),
            "title": "Run a job now",
            "opts": self.model._meta,
            "form": form,
            "jobs": [job for job in JOBS.values() if job.tracked],
        }
        return TemplateResponse(request, "reports/admin/run_job.html", context)


@admin.register(Report)
class ReportAdmin(ReadOnlyModelAdmin):
    deletable_by = "permission"
    list_display = ("kind", "period", "period_start", "period_end", "updated_at", "file", "downloads")
    list_filter = ("kind", ("period_start", admin.DateFieldListFilter))
    date_hierarchy = "period_start"
    search_fields = ("period",)

    @admin.display(description="download")
    def downloads(self, report: Report):
        return format_html(
            '<a href="{}">CSV</a> · <a href="{}">JSON</a>',
            reverse("admin:reports_report_csv", args=[report.pk]),
            reverse("admin:reports_report_json", args=[report.pk]),
        )

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:report_id>/csv/", view(self.csv_view), name="reports_report_csv"),
            path("<int:report_id>/json/", view(self.json_view), name="reports_report_json"),
            path("<int:report_id>/file/", view(self.file_view), name="reports_report_file"),
            *super().get_urls(),
        ]

    def _get_exportable(self, request, report_id: int) -> Report:
        if not request.user.has_perm("reports.export_report"):
            raise PermissionDenied
        return get_object_or_404(Report, pk=report_id)

    def csv_view(self, request, report_id: int):
        return exports.report_csv_response(self._get_exportable(request, report_id))

    def json_view(self, request, report_id: int):
        return exports.report_json_response(self._get_exportable(request, report_id))

    def file_view(self, request, report_id: int):
        """The export file (audit_export), served through the admin so it keeps the permission check."""
        report = self._get_exportable(request, report_id)
        if not report.file:
            raise Http404("This report has no file.")
        try:
            handle = report.file.open("rb")
        except FileNotFoundError:
            raise Http404("The report's file is missing from storage.") from None
        return FileResponse(handle, as_attachment=True, filename=report.file.name.rsplit("/", 1)[-1])

    def change_view(self, request, object_id, form_url="", extra_context=None):
        report = get_object_or_404(Report, pk=object_id)
        if not self.has_view_permission(request, report):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": str(report),
            "opts": self.model._meta,
            "original": report,
            "report": report,
            "charts": report_charts(report.data),
            "sections": [
                (name, json.dumps(body, indent=2, sort_keys=True, default=str))
                for name, body in report.data.get("sections", {}).items()
            ],
            "can_export": request.user.has_perm("reports.export_report"),
        }
        return TemplateResponse(request, "reports/admin/report_detail.html", context)


class JobPeriodicTaskAdmin(PeriodicTaskAdmin):
    """django-celery-beat's admin with permission-checked, audited actions; jobs run via ``job_enqueue``.

    The stock actions carry no ``allowed_permissions``, so anyone who may *view* schedules could
    enable, disable or run them; each is redeclared here with the permission it needs.
    """

    # The stock template's inline script is refused by the Content-Security-Policy.
    change_form_template = "admin/reports/periodictask/change_form.html"

    def has_run_job_permission(self, request) -> bool:
        return request.user.has_perm("reports.run_job")

    def save_model(self, request, obj, form, change) -> None:
        schedule_save(
            actor=request.user, periodic_task=obj, created=not change, changed_fields=form.changed_data, request=request
        )

    def delete_model(self, request, obj) -> None:
        schedule_delete(actor=request.user, periodic_task=obj, request=request)

    def delete_queryset(self, request, queryset) -> None:
        for periodic_task in queryset:
            schedule_delete(actor=request.user, periodic_task=periodic_task, request=request)

    def _set_enabled(self, request, queryset, enabled: bool | None, verb: str) -> None:
        changed = schedules_set_enabled(actor=request.user, periodic_tasks=queryset, enabled=enabled, request=request)
        for periodic_task in changed:
            state = "Enabled" if periodic_task.enabled else "Disabled"
            self.log_change(request, periodic_task, f"{state} ({verb} action).")
        self.message_user(request, f"{len(changed)} task(s) {verb}d.")

    @admin.action(description=PeriodicTaskAdmin.enable_tasks.short_description, permissions=["change"])
    def enable_tasks(self, request, queryset):
        self._set_enabled(request, queryset, True, "enable")

    @admin.action(description=PeriodicTaskAdmin.disable_tasks.short_description, permissions=["change"])
    def disable_tasks(self, request, queryset):
        self._set_enabled(request, queryset, False, "disable")

    @admin.action(description=PeriodicTaskAdmin.toggle_tasks.short_description, permissions=["change"])
    def toggle_tasks(self, request, queryset):
        self._set_enabled(request, queryset, None, "toggle")

    @admin.action(description=PeriodicTaskAdmin.run_tasks.short_description, permissions=["run_job"])
    def run_tasks(self, request, queryset):
        others = []
        for periodic_task in queryset:
            schedule_run_requested(actor=request.user, periodic_task=periodic_task, request=request)
            self.log_change(request, periodic_task, "Run now requested.")
            kwargs = json.loads(periodic_task.kwargs or "{}")
            spec = job_for_task(periodic_task.task)
            if periodic_task.task == "jobs.run":
                _enqueue_and_report(request, JobRequest(job=kwargs.get("job", ""), source_id=kwargs.get("source_id")))
            elif spec is not None and spec.tracked:
                _enqueue_and_report(request, JobRequest(job=spec.name, source_id=kwargs.get("source_id")))
            else:
                others.append(periodic_task.pk)
        if others:
            # Untracked tickers and plain tasks: sent as django-celery-beat sends them.
            super().run_tasks(request, queryset.filter(pk__in=others))


admin.site.unregister(PeriodicTask)
admin.site.register(PeriodicTask, JobPeriodicTaskAdmin)
