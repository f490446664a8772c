"""Admin pages between experiments and the prompt registry, served by ``ExperimentAdmin.get_urls``.

- ``<id>/promote/<variant>/``: the confirmation page of a promotion — the diff from the version
  under ``production`` to the variant's version (``difflib``; every line escaped by the template,
  no script) — whose POST calls ``experiment_promote``. The statistics page links here when the
  decision is ``ship``.
- ``prefilled_variants``: the add form's variants from ``?target_prompt_type=<key>&challenger_version=<n>``
  (the control on the version under ``production``, the challenger on version n), which the
  prompts admin links to ("start an experiment: this version against production").
"""

from __future__ import annotations

import difflib

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse

from agentplatform.errors import PlatformError
from experiments.models import Experiment
from experiments.services.promotion import experiment_promote
from prompts.models import PRODUCTION, Prompt
from prompts.selectors import prompt_label_target
from prompts.services import may_move

RUN_PERMISSION = "experiments.run_experiment"


def diff_lines(before: str, after: str) -> list[dict[str, str]]:
    """A unified diff as ``{"kind": "add"|"del"|"hunk"|"same", "text": line}`` rows for the template."""
    kinds = {"+": "add", "-": "del", "@": "hunk", " ": "same"}
    lines = difflib.unified_diff(
        before.splitlines(), after.splitlines(), fromfile="production", tofile="promoted", lineterm="", n=3
    )
    return [
        {"kind": kinds.get(line[:1], "same"), "text": line} for line in lines if not line.startswith(("---", "+++"))
    ]


def promotion_offer(*, user, experiment: Experiment, decision: dict) -> dict | None:
    """What the statistics page's "Promote" button needs when the decision is ``ship`` (else None)."""
    if decision.get("action") != "ship" or not experiment.is_live or not user.has_perm(RUN_PERMISSION):
        return None
    variant = experiment.variants.filter(key=decision.get("variant")).select_related("prompt_version").first()
    if variant is None or variant.prompt_version is None:
        return None
    return {
        "variant": variant.key,
        "version": variant.prompt_version.version,
        "url": reverse("admin:experiments_experiment_promote", args=[experiment.pk, variant.key]),
    }


def promote_view(request, object_id: str, variant_key: str, *, model_admin):
    if not request.user.has_perm(RUN_PERMISSION):
        raise PermissionDenied
    experiment = get_object_or_404(Experiment, pk=object_id)
    variant = get_object_or_404(
        experiment.variants.select_related("prompt_version__prompt"), key=variant_key, prompt_version__isnull=False
    )
    stats_url = reverse("admin:experiments_experiment_stats", args=[experiment.pk])
    if request.method == "POST":
        try:
            promotion = experiment_promote(
                actor=request.user, experiment=experiment, variant_key=variant.key, request=request
            )
        except PlatformError as error:
            model_admin.message_user(request, error.message, messages.ERROR)
            return HttpResponseRedirect(stats_url)
        model_admin.message_user(
            request,
            f"'{promotion.prompt}' production now serves version {promotion.version} "
            f"(was {promotion.from_version or 'none'}); '{experiment.key}' is stopped.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:experiments_experiment_change", args=[experiment.pk]))
    version = variant.prompt_version
    prompt = version.prompt
    current_version = prompt_label_target(prompt=prompt, label=PRODUCTION)
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": Experiment._meta,
        "title": f"Promote {variant.key} (version {version.version}) to production?",
        "experiment": experiment,
        "variant": variant,
        "version": version,
        "prompt": prompt,
        "current_version": current_version,
        "diff": diff_lines(current_version.content if current_version else "", version.content),
        "unchanged": current_version is not None and current_version.pk == version.pk,
        "allowed": experiment.is_live,
        "may_move": may_move(request.user, prompt, PRODUCTION),
        "stats_url": stats_url,
    }
    return TemplateResponse(request, "admin/experiments/experiment/confirm_promotion.html", context)


def prefilled_variants(request) -> list[dict] | None:
    """The add form's variants from ``?target_prompt_type=&challenger_version=`` (None without both)."""
    key, number = request.GET.get("target_prompt_type"), request.GET.get("challenger_version")
    if not key or not number or not number.isdigit():
        return None
    prompt = Prompt.objects.filter(key=key).first()
    if prompt is None or not prompt.versions.filter(version=int(number)).exists():
        return None
    production = prompt_label_target(prompt=prompt, label=PRODUCTION)
    control = {"key": "control", "name": "production", "is_control": True, "weight": 1.0}
    if production is not None:
        control.update(version=production.version, name=f"production (version {production.version})")
    challenger = {"key": f"v{number}", "name": f"version {number}", "version": int(number), "weight": 1.0}
    return [control, challenger]
