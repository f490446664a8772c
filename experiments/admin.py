"""The experiments admin: the management UI staff run experiments from.

Input is checked by ``experiments.validation`` (the same rules, in the same words, as the API);
every change goes through the services with ``actor=request.user`` — saving the change form calls
``experiment_create``/``experiment_update`` with the form's and the variants' cleaned data, so a
change made here and the same change made through the API store the same rows and audit events;
transitions follow a confirmation page. Extra pages are ``get_urls`` entries: transitions, copy,
CSV exports, the namespace slices and the statistics pages (``experiments.stats.admin_views``).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import construct_change_message
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.forms.models import BaseInlineFormSet
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from agentplatform.admin import ReadOnlyModelAdmin
from agentplatform.errors import PlatformError
from audit.services import audit_log
from experiments import exports, namespaces, promotion_admin, selectors
from experiments.metric_catalogue import METRIC_CHOICES
from experiments.models import EXPERIMENT_SETTINGS, Experiment, ExperimentStatus, Exposure, Result, Variant
from experiments.services import lifecycle
from experiments.stats import admin_views as stats_admin_views
from experiments.validation import (
    CONTENT_REQUIRED,
    PROMPT_VERSION_INVALID,
    VARIANT_KEY_INVALID,
    WEIGHT_INVALID,
    validate_experiment_fields,
    validate_variants,
)
from prompts.templating import normalise_newlines

# transition name -> (service, label, statuses it applies to)
TRANSITIONS = {
    "start": (lifecycle.experiment_start, "Start", (ExperimentStatus.DRAFT,)),
    "resume": (lifecycle.experiment_start, "Resume", (ExperimentStatus.PAUSED,)),
    "pause": (lifecycle.experiment_pause, "Pause", (ExperimentStatus.RUNNING,)),
    "stop": (lifecycle.experiment_stop, "Stop", (ExperimentStatus.RUNNING, ExperimentStatus.PAUSED)),
}
VARIANT_FIELDS = ("key", "name", "content", "weight", "is_control")


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
        fields = ("key", *EXPERIMENT_SETTINGS)

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
    """Per-field errors in the words of ``experiments.validation`` (the admin checks fields first).

    ``version`` is the prompt version's number (the API's ``prompt_version``); ``content`` is the
    alternative, stored as a version of the experiment's prompt by the service.
    """

    version = forms.IntegerField(
        required=False,
        min_value=1,
        widget=forms.NumberInput(attrs={"class": "vIntegerField"}),
        label="prompt version",
        error_messages={"invalid": PROMPT_VERSION_INVALID, "min_value": PROMPT_VERSION_INVALID},
        help_text="A version of the experiment's prompt, or leave empty and write the content.",
    )

    class Meta:
        model = Variant
        fields = VARIANT_FIELDS
        # Sized so the inline's row fits the 1,280 px page (the admin's defaults are 20em fields
        # and a 40-column text area: 1,840 px).
        widgets = {
            "key": forms.TextInput(attrs={"size": 12}),
            "name": forms.TextInput(attrs={"size": 16}),
            "content": forms.Textarea(attrs={"rows": 3, "cols": 36}),
            "weight": forms.NumberInput(attrs={"class": "vIntegerField", "step": "any"}),
        }
        error_messages = {
            "key": {"required": VARIANT_KEY_INVALID, "invalid": VARIANT_KEY_INVALID},
            "content": {"required": CONTENT_REQUIRED},
            "weight": {"required": WEIGHT_INVALID, "invalid": WEIGHT_INVALID},
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk and self.instance.prompt_version_id:
            self.initial.setdefault("version", self.instance.prompt_version.version)

    def clean_content(self):
        content = self.cleaned_data.get("content")
        return normalise_newlines(content) if content else content

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
                "content": form.cleaned_data.get("content") or None,
                "prompt_version": form.cleaned_data.get("version"),
                "weight": form.cleaned_data.get("weight"),
                "is_control": bool(form.cleaned_data.get("is_control")),
            }
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]
        errors = validate_variants(variants)
        if errors:
            raise ValidationError(_error_messages(errors))


def _variant_rows(formset) -> list[dict]:
    """The variants the formset leaves, in its order, as service input (read-only fields as stored)."""
    deleted = formset.deleted_forms
    rows = []
    for form in formset.forms:
        if form in deleted or not (form.instance.pk or form.has_changed()):
            continue
        row = {name: form.cleaned_data.get(name, getattr(form.instance, name)) for name in VARIANT_FIELDS}
        current = form.instance.prompt_version.version if form.instance.prompt_version_id else None
        row["prompt_version"] = form.cleaned_data.get("version", current)
        if "content" in form.changed_data and "version" not in form.changed_data:
            row["prompt_version"] = None  # the text was edited: it becomes (or reuses) a version
        elif row["prompt_version"] is not None:
            row["content"] = None  # the shown text is the version's copy: the number decides
        rows.append(row)
    return rows


class VariantInline(admin.TabularInline):
    model = Variant
    form = VariantAdminForm
    formset = VariantFormSet
    fields = ("key", "name", "version", "content", "weight", "share", "is_control")
    readonly_fields = ("share",)
    extra = 0
    min_num = 2

    @admin.display(description="share of traffic")
    def share(self, variant: Variant) -> str:
        if not variant.pk:
            return "-"
        total = sum(v.weight for v in variant.experiment.variants.all())
        return f"{variant.weight / total:.1%}" if total else "-"

    @admin.display(description="prompt version")
    def version_number(self, variant: Variant) -> str:
        return str(variant.prompt_version.version) if variant.prompt_version_id else "-"

    def get_fields(self, request, obj=None):
        if obj is not None and obj.status != ExperimentStatus.DRAFT:
            return ("key", "name", "version_number", "content", "weight", "share", "is_control")
        return self.fields

    def get_extra(self, request, obj=None, **kwargs):
        return 2 if obj is None else 0

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.status != ExperimentStatus.DRAFT:
            return ("key", "version_number", "content", "weight", "share", "is_control")
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
                fields.extend((*lifecycle.ASSIGNMENT_FIELDS, *lifecycle.PLAN_FIELDS))
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

    # --- saving through the services ------------------------------------------------------------
    # Django saves the form (save_model), then the inlines (save_related); the service takes both at
    # once, so save_model leaves the work to save_related, which hands everything to it.

    def save_model(self, request, obj, form, change):
        """Nothing to do here: ``save_related`` saves the experiment with its variants."""

    def save_related(self, request, form, formsets, change):
        data = dict(form.cleaned_data)  # the settings the form edits (read-only fields are not in it)
        variants = next((formset for formset in formsets if formset.model is Variant), None)
        if variants is not None:
            data["variants"] = _variant_rows(variants)
        if change:
            lifecycle.experiment_update(actor=request.user, experiment=form.instance, data=data, request=request)
        else:
            experiment = lifecycle.experiment_create(actor=request.user, data=data, request=request)
            form.instance.pk = experiment.pk  # Django's history entry and redirect name the new row

    def construct_change_message(self, request, form, formsets, add=False):
        # The inlines were not saved through their formsets (the service saved the variants), so
        # the history names the form's changes only; the audit row has the full list.
        return construct_change_message(form, [], add)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except PlatformError as error:
            # The form checked the input; what the service refuses now changed in between (a key
            # taken meanwhile, the experiment started): nothing was saved, say why.
            self.message_user(request, error.message, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

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
            path("sample-size/", wrap(self.sample_size_view), name="experiments_experiment_sample_size"),
            path(
                "<path:object_id>/promote/<str:variant>/",
                wrap(self.promote_view),
                name="experiments_experiment_promote",
            ),
            path("<path:object_id>/stats/", wrap(self.stats_view), name="experiments_experiment_stats"),
            path(
                "<path:object_id>/stats/export.csv", wrap(self.stats_csv_view), name="experiments_experiment_stats_csv"
            ),
            path(
                "<path:object_id>/stats/export.json",
                wrap(self.stats_json_view),
                name="experiments_experiment_stats_json",
            ),
            # Last: the default URLs end with a catch-all "<path:object_id>/" that would take the pages above.
            *super().get_urls(),
        ]

    # The statistics pages (``experiments.stats.admin_views``).

    def stats_view(self, request, object_id: str):
        return stats_admin_views.stats_view(request, object_id, model_admin=self)

    def promote_view(self, request, object_id: str, variant: str):
        return promotion_admin.promote_view(request, object_id, variant, model_admin=self)

    def get_formset_kwargs(self, request, obj, inline, prefix):
        kwargs = super().get_formset_kwargs(request, obj, inline, prefix)
        # "Start an experiment: this version against production" from the prompts admin.
        if (obj is None or obj.pk is None) and request.method == "GET" and isinstance(inline, VariantInline):
            initial = promotion_admin.prefilled_variants(request)
            if initial:
                kwargs["initial"] = initial
        return kwargs

    def stats_csv_view(self, request, object_id: str):
        return stats_admin_views.stats_export_csv(request, object_id, model_admin=self)

    def stats_json_view(self, request, object_id: str):
        return stats_admin_views.stats_export_json(request, object_id, model_admin=self)

    def sample_size_view(self, request):
        return stats_admin_views.sample_size_view(request, model_admin=self)

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
        copy = lifecycle.experiment_copy(actor=request.user, experiment=experiment, request=request)
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
            resource_type=lifecycle.RESOURCE_TYPE,
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
            copy = lifecycle.experiment_copy(actor=request.user, experiment=experiment, request=request)
            self.message_user(request, f"'{experiment.key}' copied as draft '{copy.key}'.", messages.SUCCESS)


class _ReadOnlyAdmin(ReadOnlyModelAdmin):
    """Exposures and results are data agents produced: staff read them, nobody edits them here."""

    list_select_related = ("experiment", "variant")
    show_full_result_count = False  # COUNT(*) over millions of rows on every page is slow


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
