"""The prompt registry's admin: prompts, their read-only versions, diffs, label moves, previews.

Every write goes through ``prompts.services`` with ``actor=request.user`` (creating or changing a
prompt, a new version, a label move), so the admin and the API store the same rows and audit
events. Versions are read-only here as everywhere: no change, no delete, their page shows them.
The extra pages (diff, new version, preview, label move and history) are ``get_urls`` entries of
``PromptAdmin``, served by ``prompts.admin_views``.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, DateTimeField, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce, Greatest
from django.http import HttpResponseRedirect
from django.urls import path

from agentplatform.admin import ReadOnlyModelAdmin
from agentplatform.errors import PlatformError, ValidationFailed
from prompts import admin_views, services
from prompts.models import PRODUCTION, Prompt, PromptLabel, PromptLabelMove, PromptVersion

STAGING = "staging"


def _label_version(label: str) -> Subquery:
    return Subquery(
        PromptLabel.objects.filter(prompt=OuterRef("pk"), name=label).values("version__version")[:1],
        output_field=IntegerField(),
    )


class PromptAdminForm(forms.ModelForm):
    """Key, description and protected labels (typed as a comma-separated list); checked by the services' rules."""

    protected_labels = forms.CharField(
        required=False,
        help_text="Comma-separated. Only holders of prompts.move_protected_label (admins) may move these.",
    )

    class Meta:
        model = Prompt
        fields = ("key", "description", "protected_labels")
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "protected_labels" in self.fields:
            labels = self.instance.protected_labels if self.instance.pk else [PRODUCTION]
            self.initial["protected_labels"] = ", ".join(labels)

    def clean_key(self):
        key = self.cleaned_data["key"]
        problems = services.key_errors(key)
        if problems:
            raise forms.ValidationError(problems)
        return key

    def clean_protected_labels(self):
        labels = admin_views.parse_labels(self.cleaned_data.get("protected_labels") or "")
        problems = [f"'{label}': {services.label_errors(label)[0]}" for label in labels if services.label_errors(label)]
        if problems:
            raise forms.ValidationError(problems)
        return labels


@admin.register(Prompt)
class PromptAdmin(admin.ModelAdmin):
    form = PromptAdminForm
    list_display = ("key", "production_version", "staging_version", "versions", "last_change")
    search_fields = ("key", "description")
    ordering = ("key",)
    change_form_template = "admin/prompts/prompt/change_form.html"
    readonly_fields = ("created_by", "created_at", "updated_at")

    def get_queryset(self, request):
        latest_move = Subquery(
            PromptLabelMove.objects.filter(prompt=OuterRef("pk")).order_by("-moved_at").values("moved_at")[:1],
            output_field=DateTimeField(),
        )
        return (
            super()
            .get_queryset(request)
            .annotate(
                version_count=Count("versions", distinct=True),
                production=_label_version(PRODUCTION),
                staging=_label_version(STAGING),
                last_change_at=Greatest("updated_at", Coalesce(latest_move, "updated_at")),
            )
        )

    def get_readonly_fields(self, request, obj=None):
        if obj is not None:
            return ("key", *self.readonly_fields)
        return self.readonly_fields

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("key", "description", "protected_labels")
        return ("key", "description", "protected_labels", "created_by", "created_at", "updated_at")

    def has_delete_permission(self, request, obj=None):
        return False  # a prompt's versions are kept for good (experiments and audits refer to them)

    # --- columns ----------------------------------------------------------------------------------

    @admin.display(description="production", ordering="production")
    def production_version(self, prompt: Prompt):
        return f"v{prompt.production}" if prompt.production else "-"

    @admin.display(description="staging", ordering="staging")
    def staging_version(self, prompt: Prompt):
        return f"v{prompt.staging}" if prompt.staging else "-"

    @admin.display(description="versions", ordering="version_count")
    def versions(self, prompt: Prompt) -> int:
        return prompt.version_count

    @admin.display(description="last change", ordering="last_change_at")
    def last_change(self, prompt: Prompt):
        return prompt.last_change_at

    # --- saving through the services --------------------------------------------------------------

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            services.prompt_update(
                actor=request.user,
                prompt=obj,
                description=data.get("description", ""),
                protected_labels=data.get("protected_labels"),
                request=request,
            )
        else:
            prompt = services.prompt_create(
                actor=request.user,
                key=data["key"],
                description=data.get("description", ""),
                protected_labels=data.get("protected_labels"),
                request=request,
            )
            obj.pk = prompt.pk  # Django's history entry and redirect name the new row

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except PlatformError as error:
            # What the service refuses beyond the form's checks (a key taken meanwhile, protection
            # changed without the permission): nothing was saved, say why.
            message = error.message
            if isinstance(error, ValidationFailed) and isinstance(error.details, dict):
                message = f"{message} " + " ".join(f"{k}: {'; '.join(v)}" for k, v in error.details.items())
            self.message_user(request, message, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def change_view(self, request, object_id, form_url="", extra_context=None):
        prompt = self.get_object(request, object_id)
        extra_context = extra_context or {}
        if prompt is not None:
            extra_context.update(admin_views.prompt_page_context(request, prompt))
        return super().change_view(request, object_id, form_url, extra_context)

    # --- extra pages ------------------------------------------------------------------------------

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path(
                "<int:object_id>/versions/<int:version>/diff/",
                wrap(self.diff_view),
                name="prompts_prompt_diff",
            ),
            path("<int:object_id>/versions/new/", wrap(self.new_version_view), name="prompts_prompt_new_version"),
            path(
                "<int:object_id>/versions/<int:version>/preview/",
                wrap(self.preview_view),
                name="prompts_prompt_preview",
            ),
            path("<int:object_id>/labels/move/", wrap(self.label_move_view), name="prompts_prompt_label_move"),
            path(
                "<int:object_id>/labels/<str:label>/history/",
                wrap(self.label_history_view),
                name="prompts_prompt_label_history",
            ),
            # Last: the default URLs end with a catch-all "<path:object_id>/".
            *super().get_urls(),
        ]

    def diff_view(self, request, object_id: int, version: int):
        return admin_views.diff_view(request, object_id, version, model_admin=self)

    def new_version_view(self, request, object_id: int):
        return admin_views.new_version_view(request, object_id, model_admin=self)

    def preview_view(self, request, object_id: int, version: int):
        return admin_views.preview_view(request, object_id, version, model_admin=self)

    def label_move_view(self, request, object_id: int):
        return admin_views.label_move_view(request, object_id, model_admin=self)

    def label_history_view(self, request, object_id: int, label: str):
        return admin_views.label_history_view(request, object_id, label, model_admin=self)


@admin.register(PromptVersion)
class PromptVersionAdmin(ReadOnlyModelAdmin):
    """Versions are immutable: listed and shown read-only, never changed or deleted."""

    list_display = ("prompt", "version", "message", "created_by", "created_at")
    list_select_related = ("prompt", "created_by")
    list_filter = ("prompt",)
    search_fields = ("prompt__key", "message", "content")
    ordering = ("prompt__key", "-version")
    fields = ("prompt", "version", "content", "config", "message", "content_hash", "created_by", "created_at")
    change_form_template = "admin/prompts/promptversion/change_form.html"


@admin.register(PromptLabelMove)
class PromptLabelMoveAdmin(ReadOnlyModelAdmin):
    """Every label move, as recorded (the audit log holds the same, hash-chained)."""

    list_display = ("prompt", "label", "from_version", "to_version", "actor_label", "reason", "moved_at")
    list_select_related = ("prompt",)
    list_filter = ("label", "prompt")
    search_fields = ("prompt__key", "label", "actor_label", "reason")
