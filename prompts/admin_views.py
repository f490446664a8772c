"""The prompt admin's extra pages: version diff, new version, preview, label move, label history.

Each is reached from the prompt's page (``PromptAdmin.get_urls``), checks its own permission (the
admin site only checks that the user is staff) and writes through ``prompts.services``.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse

from agentplatform.errors import PlatformError, ValidationFailed
from prompts import selectors, services
from prompts.diff import config_text, side_by_side
from prompts.models import CONTENT_MAX_CHARS, MESSAGE_MAX_CHARS, Prompt, PromptVersion
from prompts.selectors import VERSION_MAX
from prompts.services import MOVE_PROTECTED_PERMISSION, REASON_MAX_CHARS
from prompts.templating import MissingVariables, compile_prompt, normalise_newlines, variables_of

ADD_VERSION = "prompts.add_promptversion"
MOVE_LABEL = "prompts.change_promptlabel"
VIEW_VERSION = "prompts.view_promptversion"
ADD_EXPERIMENT = "experiments.add_experiment"
HISTORY_PAGE_SIZE = 50


def parse_labels(text: str) -> list[str]:
    """Label names typed as ``production, staging`` (commas or spaces), each once, in order."""
    return list(dict.fromkeys(part for part in text.replace(",", " ").split() if part))


def _prompt(request, object_id: int, model_admin) -> Prompt:
    if not (model_admin.has_view_permission(request) and request.user.has_perm(VIEW_VERSION)):
        raise PermissionDenied
    return get_object_or_404(Prompt, pk=object_id)


def _version(prompt: Prompt, number: int) -> PromptVersion:
    if not 1 <= number <= VERSION_MAX:
        raise Http404
    return get_object_or_404(selectors.prompt_versions(prompt=prompt), version=number)


def _context(request, model_admin, prompt: Prompt, title: str, **extra) -> dict:
    return {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "prompt": prompt,
        "change_url": reverse("admin:prompts_prompt_change", args=[prompt.pk]),
        "title": title,
        **extra,
    }


def _experiment_url(prompt: Prompt, version: int) -> str:
    """The experiment form, prefilled: this version (the challenger) against production."""
    query = urlencode({"target_prompt_type": prompt.key, "challenger_version": version})
    return f"{reverse('admin:experiments_experiment_add')}?{query}"


def prompt_page_context(request, prompt: Prompt) -> dict:
    """What the prompt's change page shows below the form: versions with their labels, labels, buttons."""
    user = request.user
    versions = list(selectors.prompt_versions(prompt=prompt)) if user.has_perm(VIEW_VERSION) else []
    labels = sorted(prompt.labels.select_related("version").all(), key=lambda label: label.name)
    rows = [
        {
            "version": version,
            "labels": [label.name for label in version.labels.all()],
            "variables": variables_of(version.content),
            "experiment_url": _experiment_url(prompt, version.version),
        }
        for version in versions
    ]
    return {
        "version_rows": rows,
        "prompt_labels": [
            {
                "label": label,
                "protected": label.name in prompt.protected_labels,
                "movable": user.has_perm(MOVE_LABEL) and services.may_move(user, prompt, label.name),
            }
            for label in labels
        ],
        "can_add_version": user.has_perm(ADD_VERSION),
        "can_move_labels": user.has_perm(MOVE_LABEL),
        "can_start_experiment": user.has_perm(ADD_EXPERIMENT),
    }


# --- diff -----------------------------------------------------------------------------------------


def diff_view(request, object_id: int, version: int, *, model_admin):
    """Version ``version`` against ``?against=N`` (default: the one before it), side by side."""
    prompt = _prompt(request, object_id, model_admin)
    new = _version(prompt, version)
    numbers = list(selectors.prompt_versions(prompt=prompt).values_list("version", flat=True))
    against = request.GET.get("against")
    if against is not None:
        if not against.isdigit() or len(against) > 10:
            raise Http404
        old = _version(prompt, int(against))
    else:
        old = selectors.prompt_versions(prompt=prompt).filter(version__lt=version).first()
    context = _context(
        request,
        model_admin,
        prompt,
        f"{prompt.key}: version {version}" + (f" against version {old.version}" if old else ""),
        new=new,
        old=old,
        numbers=numbers,
        content_diff=side_by_side(old.content if old else "", new.content),
        config_diff=side_by_side(config_text(old.config) if old else "", config_text(new.config)),
    )
    return TemplateResponse(request, "admin/prompts/prompt/diff.html", context)


# --- new version ----------------------------------------------------------------------------------


class NewVersionForm(forms.Form):
    content = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 14, "class": "prompt-text"}),
        max_length=CONTENT_MAX_CHARS,
        strip=False,
        help_text="{{name}} placeholders; no other logic.",
    )
    config = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "class": "prompt-text"}),
        help_text="A JSON object: model, temperature, max_tokens, tools …",
    )
    message = forms.CharField(required=False, max_length=MESSAGE_MAX_CHARS, help_text="What changed.")
    labels = forms.CharField(
        required=False,
        help_text="Labels to move to the new version, comma-separated (protected ones need the permission).",
    )

    def clean_content(self) -> str:
        return normalise_newlines(self.cleaned_data["content"])

    def clean_config(self):
        text = (self.cleaned_data.get("config") or "").strip()
        if not text:
            return {}
        try:
            config = json.loads(text)
        except ValueError as error:
            raise forms.ValidationError(f"Not valid JSON: {error}") from None
        if not isinstance(config, dict):
            raise forms.ValidationError("A JSON object ({...}).")
        return config

    def clean_labels(self):
        return parse_labels(self.cleaned_data.get("labels") or "")


def _add_service_errors(form: forms.Form, error: PlatformError) -> None:
    if isinstance(error, ValidationFailed) and isinstance(error.details, dict):
        for field, problems in error.details.items():
            for problem in problems:
                form.add_error(field if field in form.fields else None, problem)
    else:
        form.add_error(None, error.message)


def new_version_view(request, object_id: int, *, model_admin):
    """A form prefilled from ``?from=N`` (default: the latest version); saving adds the next version."""
    prompt = _prompt(request, object_id, model_admin)
    if not request.user.has_perm(ADD_VERSION):
        raise PermissionDenied
    source_number = request.GET.get("from")
    if source_number is not None:
        if not source_number.isdigit() or len(source_number) > 10:
            raise Http404
        source = _version(prompt, int(source_number))
    else:
        source = selectors.prompt_latest_version(prompt=prompt)
    if request.method == "POST":
        form = NewVersionForm(request.POST)
        if form.is_valid():
            try:
                version = services.prompt_version_create(
                    actor=request.user, prompt=prompt, request=request, **form.cleaned_data
                )
            except PlatformError as error:
                _add_service_errors(form, error)
            else:
                created = f"Version {version.version} of '{prompt.key}' created."
                model_admin.message_user(request, created, messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:prompts_prompt_change", args=[prompt.pk]))
    else:
        initial = {"message": f"From version {source.version}"} if source else {}
        if source is not None:
            initial.update(content=source.content, config=config_text(source.config) if source.config else "")
        form = NewVersionForm(initial=initial)
    title = f"New version of {prompt.key}" + (f" from version {source.version}" if source else "")
    context = _context(request, model_admin, prompt, title, form=form, source=source)
    return TemplateResponse(request, "admin/prompts/prompt/new_version.html", context)


# --- preview --------------------------------------------------------------------------------------


class PreviewForm(forms.Form):
    """One text field per placeholder of the version (a blank field counts as missing)."""

    def __init__(self, *args, variables: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        for name in variables:
            self.fields[name] = forms.CharField(
                required=False, strip=False, widget=forms.Textarea(attrs={"rows": 2, "class": "prompt-variable"})
            )


def preview_view(request, object_id: int, version: int, *, model_admin):
    """The version compiled with sample variables (a GET form: nothing is stored)."""
    prompt = _prompt(request, object_id, model_admin)
    target = _version(prompt, version)
    variables = variables_of(target.content)
    submitted = "render" in request.GET
    form = PreviewForm(request.GET if submitted else None, variables=variables)
    compiled = None
    if submitted and form.is_valid():
        given = {name: value for name, value in form.cleaned_data.items() if value}
        try:
            compiled = compile_prompt(target.content, given)
        except MissingVariables as missing:
            for name in missing.names:
                form.add_error(name, f"Missing variable '{name}': the prompt uses {{{{{name}}}}}.")
    context = _context(
        request,
        model_admin,
        prompt,
        f"Preview {prompt.key} version {version}",
        version=target,
        form=form,
        compiled=compiled,
        variables=variables,
    )
    return TemplateResponse(request, "admin/prompts/prompt/preview.html", context)


# --- label moves ----------------------------------------------------------------------------------


class LabelMoveForm(forms.Form):
    label = forms.CharField(max_length=50, help_text="production, staging or any other label name.")
    version = forms.TypedChoiceField(coerce=int)
    reason = forms.CharField(
        required=False, max_length=REASON_MAX_CHARS, widget=forms.Textarea(attrs={"rows": 2}), help_text="Why."
    )

    def __init__(self, *args, prompt: Prompt, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.prompt = prompt
        self.user = user
        self.fields["version"].choices = [
            (number, f"version {number}")
            for number in selectors.prompt_versions(prompt=prompt).values_list("version", flat=True)
        ]

    def clean_label(self):
        label = self.cleaned_data["label"]
        problems = services.label_errors(label)
        if problems:
            raise forms.ValidationError(problems)
        if not services.may_move(self.user, self.prompt, label):
            raise forms.ValidationError(
                f"'{label}' is a protected label of '{self.prompt.key}': moving it needs the permission "
                f"{MOVE_PROTECTED_PERMISSION} (admins have it). Ask an admin to move it."
            )
        return label


def label_move_view(request, object_id: int, *, model_admin):
    """Choose label, version and reason; a confirmation page; then ``prompt_label_move``."""
    prompt = _prompt(request, object_id, model_admin)
    if not request.user.has_perm(MOVE_LABEL):
        raise PermissionDenied
    change_url = reverse("admin:prompts_prompt_change", args=[prompt.pk])
    data = request.POST if request.method == "POST" else None
    initial = {key: request.GET[key] for key in ("label", "version") if key in request.GET}
    form = LabelMoveForm(data, initial=initial, prompt=prompt, user=request.user)
    if data is not None and form.is_valid():
        label, version = form.cleaned_data["label"], form.cleaned_data["version"]
        if request.POST.get("confirmed") == "yes":
            try:
                move = services.prompt_label_move(
                    actor=request.user,
                    prompt=prompt,
                    label=label,
                    version=version,
                    reason=form.cleaned_data["reason"],
                    request=request,
                )
            except PlatformError as error:
                _add_service_errors(form, error)
            else:
                if move is None:
                    model_admin.message_user(request, f"'{label}' already pointed at version {version}.", messages.INFO)
                else:
                    model_admin.message_user(
                        request,
                        f"'{label}' of '{prompt.key}' moved from "
                        f"{'nothing' if move.from_version is None else f'version {move.from_version}'} "
                        f"to version {version}.",
                        messages.SUCCESS,
                    )
                return HttpResponseRedirect(change_url)
        else:
            current = prompt.labels.filter(name=label).select_related("version").first()
            from_version = current.version.version if current is not None else None
            context = _context(
                request,
                model_admin,
                prompt,
                f"Move '{label}' of {prompt.key} to version {version}?",
                form=form,
                label=label,
                version=version,
                from_version=from_version,
                reason=form.cleaned_data["reason"],
                protected=label in prompt.protected_labels,
                diff_url=reverse("admin:prompts_prompt_diff", args=[prompt.pk, version])
                + (f"?against={from_version}" if from_version else ""),
            )
            return TemplateResponse(request, "admin/prompts/prompt/confirm_label_move.html", context)
    context = _context(request, model_admin, prompt, f"Move a label of {prompt.key}", form=form)
    return TemplateResponse(request, "admin/prompts/prompt/label_move.html", context)


def label_history_view(request, object_id: int, label: str, *, model_admin):
    prompt = _prompt(request, object_id, model_admin)
    if services.label_errors(label):
        raise Http404
    paginator = Paginator(selectors.prompt_label_history(prompt=prompt, label=label), HISTORY_PAGE_SIZE)
    page = paginator.get_page(request.GET.get("page"))
    current = prompt.labels.filter(name=label).select_related("version").first()
    context = _context(
        request,
        model_admin,
        prompt,
        f"History of '{label}' of {prompt.key}",
        label=label,
        page=page,
        current=current,
        can_move=request.user.has_perm(MOVE_LABEL) and services.may_move(request.user, prompt, label),
    )
    return TemplateResponse(request, "admin/prompts/prompt/label_history.html", context)
