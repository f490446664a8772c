"""The experiments admin: the management UI staff run experiments from.

Validation is ``experiments.validation`` (the same rules as the API); state changes go through the
services with ``actor=request.user`` after a confirmation page. Extra pages hang off ``get_urls``:
transitions, copy, CSV exports and the namespace slices. The change page leaves a
``{% block experiment_analysis %}`` for the statistics section.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.forms.models import BaseInlineFormSet
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from agentplatform.errors import PlatformError
from audit.services import audit_log
from experiments import exports, namespaces, selectors, services
from experiments.metrics import METRIC_CHOICES
from experiments.models import Experiment, ExperimentStatus, Exposure, Result, Variant
from experiments.snapshot import snapshot_invalidate
from experiments.validation import (
    ASSIGNMENT_FIELDS,
    CONTENT_REQUIRED,
    PLAN_FIELDS,
    VARIANT_KEY_INVALID,
    WEIGHT_INVALID,
    validate_experiment_fields,
    validate_variants,
)

# transition name -> (service, label, statuses it applies to)
TRANSITIONS = {
    "start": (services.experiment_start, "Start", (ExperimentStatus.DRAFT,)),
    "resume": (services.experiment_start, "Resume", (ExperimentStatus.PAUSED,)),
    "pause": (services.experiment_pause, "Pause", (ExperimentStatus.RUNNING,)),
    "stop": (services.experiment_stop, "Stop", (ExperimentStatus.RUNNING, ExperimentStatus.PAUSED)),
}


def _error_messages(errors: dict[str, list[str]]) -> list[str]:
    return [
        f"{field}: {message}" if field != "variants" else message
        for field, items in errors.items()
        for message in items
    ]


class ExperimentAdminForm(forms.ModelForm):
    guardrail_metrics = forms.MultipleChoiceField(
        choices=METRIC_CHOICES, required=False, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = Experiment
        fields = (
            "key",
            "name",
            "hypothesis",
            "target_prompt_type",
            "primary_metric",
            "guardrail_metrics",
            "sequential",
            "target_mde",
            "user_percentage",
            "seed",
        )

    def clean(self):
        cleaned = super().clean()
        instance = self.instance if self.instance.pk else None
        data = {}
        for name in self.fields:
            if name in cleaned:
                data[name] = cleaned[name]
            elif name != "target_mde":
                # A field that failed its own parsing is judged on what was typed, so the message
                # is the shared rule's, as in the API ("Unknown metric 'revenue'", not "Select ...").
                raw = self.data.getlist(self.add_prefix(name)) if name == "guardrail_metrics" else None
                data[name] = raw if raw is not None else self.data.get(self.add_prefix(name))
        if "target_mde" in data and data["target_mde"] is None:
            data.pop("target_mde")
        for field, field_errors in validate_experiment_fields(data, instance=instance).items():
            for message in field_errors:
                self.add_error(field if field in self.fields else None, message)
        return cleaned


class VariantAdminForm(forms.ModelForm):
    """Per-field errors in the words of ``experiments.validation`` (the admin checks fields first)."""

    class Meta:
        model = Variant
        fields = ("key", "name", "content", "weight", "is_control")
        error_messages = {
            "key": {"required": VARIANT_KEY_INVALID, "invalid": VARIANT_KEY_INVALID},
            "content": {"required": CONTENT_REQUIRED},
            "weight": {"required": WEIGHT_INVALID, "invalid": WEIGHT_INVALID},
        }

    def clean_weight(self):
        weight = self.cleaned_data.get("weight")
        if weight is None or not weight > 0 or weight > 1_000_000:
            raise ValidationError(WEIGHT_INVALID)
        return weight


class VariantFormSet(BaseInlineFormSet):
    def validate_unique(self):
        """Duplicate keys are reported by ``validate_variants``, in the same words as the API."""

    def clean(self):
        super().clean()
        if any(self.errors):
            return
        parent = self.instance
        if parent.pk and parent.status != ExperimentStatus.DRAFT:
            return  # the variants are read-only on a started experiment (names aside)
        variants = [
            {
                "key": form.cleaned_data.get("key"),
                "name": form.cleaned_data.get("name") or "",
                "content": form.cleaned_data.get("content"),
                "weight": form.cleaned_data.get("weight"),
                "is_control": bool(form.cleaned_data.get("is_control")),
            }
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]
        errors = validate_variants(variants)
        if errors:
            raise ValidationError(_error_messages(errors))


class VariantInline(admin.TabularInline):
    model = Variant
    form = VariantAdminForm
    formset = VariantFormSet
    fields = ("key", "name", "content", "weight", "share", "is_control")
    readonly_fields = ("share",)
    extra = 0
    min_num = 2

    @admin.display(description="share of traffic")
    def share(self, variant: Variant) -> str:
        if not variant.pk:
            return "-"
        total = sum(v.weight for v in variant.experiment.variants.all())
        return f"{variant.weight / total:.1%}" if total else "-"

    def get_extra(self, request, obj=None, **kwargs):
        return 2 if obj is None else 0

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.status != ExperimentStatus.DRAFT:
            return ("key", "content", "weight", "share", "is_control")
        return self.readonly_fields

    def has_add_permission(self, request, obj=None):
        return (obj is None or obj.status == ExperimentStatus.DRAFT) and super().has_add_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return (obj is None or obj.status == ExperimentStatus.DRAFT) and super().has_delete_permission(request, obj)


def _count(model):
    return Coalesce(
        Subquery(
            model.objects.filter(experiment=OuterRef("pk"))
            .order_by()
            .values("experiment")
            .annotate(n=Count("*"))
            .values("n"),
            output_field=IntegerField(),
        ),
        0,
    )


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    form = ExperimentAdminForm
    inlines = [VariantInline]
    list_display = (
        "key",
        "name",
        "status_badge",
        "target_prompt_type",
        "traffic",
        "exposures",
        "results",
        "started_at",
    )
    list_filter = ("status", "target_prompt_type", "primary_metric")
    search_fields = ("key", "name", "hypothesis")
    ordering = ("-created_at",)
    actions = ["copy_as_new"]
    change_form_template = "admin/experiments/experiment/change_form.html"
    change_list_template = "admin/experiments/experiment/change_list.html"
    fieldsets = (
        (None, {"fields": ("key", "name", "hypothesis", "target_prompt_type")}),
        ("Analysis plan", {"fields": ("primary_metric", "guardrail_metrics", "sequential", "target_mde")}),
        ("Traffic", {"fields": ("user_percentage", "seed", "namespace_slice")}),
        ("State", {"fields": ("status", "started_at", "stopped_at", "created_by", "created_at", "updated_at")}),
    )
    readonly_fields = (
        "status",
        "namespace_slice",
        "started_at",
        "stopped_at",
        "created_by",
        "created_at",
        "updated_at",
    )

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(exposure_count=_count(Exposure), result_count=_count(Result))

    def get_readonly_fields(self, request, obj=None):
        fields = list(self.readonly_fields)
        if obj is not None:
            fields.append("key")
            if obj.status != ExperimentStatus.DRAFT:
                fields.extend((*ASSIGNMENT_FIELDS, *PLAN_FIELDS))
        return fields

    def has_delete_permission(self, request, obj=None):
        return (obj is None or obj.status == ExperimentStatus.DRAFT) and super().has_delete_permission(request, obj)

    # --- columns ------------------------------------------------------------------------------

    @admin.display(description="status", ordering="status")
    def status_badge(self, experiment: Experiment) -> str:
        colours = {"draft": "#777", "running": "#2e7d32", "paused": "#ef6c00", "completed": "#1565c0"}
        return format_html(
            '<strong style="color:{}">{}</strong>',
            colours.get(experiment.status, "#000"),
            experiment.get_status_display(),
        )

    @admin.display(description="traffic")
    def traffic(self, experiment: Experiment) -> str:
        share = f"{experiment.user_percentage.normalize():f}%"
        if experiment.namespace_start is None:
            return share
        return f"{share} · {namespaces.Slice(experiment.namespace_start, experiment.namespace_end)}"

    @admin.display(description="namespace slice")
    def namespace_slice(self, experiment: Experiment) -> str:
        if experiment.namespace_start is None:
            return "allocated when the experiment starts"
        return (
            f"{experiment.target_prompt_type} {namespaces.Slice(experiment.namespace_start, experiment.namespace_end)}"
        )

    @admin.display(description="exposures", ordering="exposure_count")
    def exposures(self, experiment: Experiment) -> int:
        return getattr(experiment, "exposure_count", 0)

    @admin.display(description="results", ordering="result_count")
    def results(self, experiment: Experiment) -> int:
        return getattr(experiment, "result_count", 0)

    # --- saving through the shared rules, audited -----------------------------------------------

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
            obj.seed = obj.seed or obj.key
        super().save_model(request, obj, form, change)

    def save_formset(self, request, form, formset, change):
        formset.save()
        if formset.model is Variant:
            deleted = formset.deleted_forms
            kept = [f.instance for f in formset.forms if f.instance.pk and f not in deleted]
            for position, variant in enumerate(kept):
                if variant.position != position:
                    variant.position = position
                    variant.save(update_fields=["position"])

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        experiment = form.instance
        audit_log(
            actor=request.user,
            action="experiment.updated" if change else "experiment.created",
            resource_type=services.RESOURCE_TYPE,
            resource_id=experiment.key,
            details={"fields": sorted(form.changed_data), "via": "admin"},
            request=request,
        )
        if experiment.is_live:
            snapshot_invalidate()

    # --- extra pages ------------------------------------------------------------------------------

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("namespaces/", wrap(self.namespaces_view), name="experiments_experiment_namespaces"),
            path(
                "<int:object_id>/transition/<str:transition>/",
                wrap(self.transition_view),
                name="experiments_experiment_transition",
            ),
            path("<int:object_id>/copy/", wrap(self.copy_view), name="experiments_experiment_copy"),
            path(
                "<int:object_id>/export/<str:kind>.csv",
                wrap(self.export_view),
                name="experiments_experiment_export",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        experiment = self.get_object(request, object_id)
        extra_context = extra_context or {}
        if experiment is not None:
            extra_context.update(
                transitions=[
                    (name, label)
                    for name, (_service, label, statuses) in TRANSITIONS.items()
                    if experiment.status in statuses
                ]
                if request.user.has_perm("experiments.run_experiment")
                else [],
                can_copy=request.user.has_perm("experiments.add_experiment"),
                can_export=request.user.has_perm("experiments.export_experiment"),
            )
        return super().change_view(request, object_id, form_url, extra_context)

    def transition_view(self, request, object_id: int, transition: str):
        if transition not in TRANSITIONS:
            raise PermissionDenied
        if not request.user.has_perm("experiments.run_experiment"):
            raise PermissionDenied
        experiment = get_object_or_404(Experiment, pk=object_id)
        service, label, statuses = TRANSITIONS[transition]
        change_url = reverse("admin:experiments_experiment_change", args=[experiment.pk])
        if request.method == "POST":
            try:
                service(actor=request.user, experiment=experiment, request=request)
            except PlatformError as error:
                self.message_user(request, error.message, messages.ERROR)
            else:
                self.message_user(request, f"{label}: '{experiment.key}' done.", messages.SUCCESS)
            return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "experiment": experiment,
            "transition": transition,
            "label": label,
            "allowed": experiment.status in statuses,
            "change_url": change_url,
            "title": f"{label} experiment '{experiment.key}'?",
        }
        return TemplateResponse(request, "admin/experiments/experiment/confirm_transition.html", context)

    def copy_view(self, request, object_id: int):
        if not request.user.has_perm("experiments.add_experiment"):
            raise PermissionDenied
        experiment = get_object_or_404(Experiment, pk=object_id)
        if request.method != "POST":
            return HttpResponseRedirect(reverse("admin:experiments_experiment_change", args=[experiment.pk]))
        copy = services.experiment_copy(actor=request.user, experiment=experiment, request=request)
        self.message_user(request, f"Copied as draft '{copy.key}' (new seed: users are reshuffled).", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:experiments_experiment_change", args=[copy.pk]))

    def export_view(self, request, object_id: int, kind: str):
        if not request.user.has_perm("experiments.export_experiment"):
            raise PermissionDenied
        experiment = get_object_or_404(Experiment, pk=object_id)
        if kind not in ("results", "exposures"):
            raise PermissionDenied
        audit_log(
            actor=request.user,
            action="experiment.exported",
            resource_type=services.RESOURCE_TYPE,
            resource_id=experiment.key,
            details={"kind": kind},
            request=request,
        )
        return exports.results_csv(experiment) if kind == "results" else exports.exposures_csv(experiment)

    def namespaces_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        prompt_types = []
        for prompt_type, experiments in selectors.namespace_slices().items():
            taken = [namespaces.Slice(e.namespace_start, e.namespace_end, e.key) for e in experiments]
            prompt_types.append(
                {
                    "name": prompt_type,
                    "slices": [
                        {
                            "experiment": e,
                            "slice": namespaces.Slice(e.namespace_start, e.namespace_end),
                            "x": float(e.namespace_start) * 100,
                            "width": float(e.namespace_end - e.namespace_start) * 100,
                        }
                        for e in experiments
                    ],
                    "free": namespaces.describe_free_space(taken),
                }
            )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Namespace slices per prompt type",
            "prompt_types": prompt_types,
        }
        return TemplateResponse(request, "admin/experiments/experiment/namespaces.html", context)

    # --- list actions -----------------------------------------------------------------------------

    @admin.action(description="Copy as new draft experiment", permissions=["add"])
    def copy_as_new(self, request, queryset):
        for experiment in queryset:
            copy = services.experiment_copy(actor=request.user, experiment=experiment, request=request)
            self.message_user(request, f"'{experiment.key}' copied as draft '{copy.key}'.", messages.SUCCESS)


class _ReadOnlyAdmin(admin.ModelAdmin):
    """Exposures and results are data agents produced: staff read them, nobody edits them here."""

    list_select_related = ("experiment", "variant")
    show_full_result_count = False  # COUNT(*) over millions of rows on every page is slow

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Exposure)
class ExposureAdmin(_ReadOnlyAdmin):
    list_display = ("experiment", "variant", "user_id", "first_seen_at")
    list_filter = ("experiment",)
    search_fields = ("user_id",)


@admin.register(Result)
class ResultAdmin(_ReadOnlyAdmin):
    list_display = ("event_id", "experiment", "variant", "user_id", "occurred_at", "success", "quality_score")
    list_filter = ("experiment",)
    search_fields = ("event_id", "user_id")


# Statistics pages (issue 7): added to the registered Experiment admin through its get_urls.
from experiments.stats.admin_views import install as install_stats_admin  # noqa: E402

install_stats_admin()
