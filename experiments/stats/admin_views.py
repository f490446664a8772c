"""Admin pages of the statistics: the analysis with pictures, exports, and a sample-size calculator.

Each view takes the ``ExperimentAdmin`` it is served by (``model_admin``), whose ``get_urls``
lists them:

- ``<id>/stats/``: SRM flag, decision and reason on top, power, variants, comparisons, a forest
  plot of each treatment's lift per metric and the cumulative primary metric per day (SVG);
- ``<id>/stats/export.csv`` (streamed, formula cells neutralised by ``agentplatform.exports``) and
  ``<id>/stats/export.json``, both audited;
- ``sample-size/``: users per variant from a baseline, a relative MDE, alpha and power.

The change page links to the stats page from ``admin/experiments/experiment/change_form.html``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from django import forms
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.utils.safestring import mark_safe

from agentplatform.errors import ValidationFailed
from agentplatform.exports import stream_csv
from audit.services import audit_log
from experiments.metric_catalogue import METRICS
from experiments.models import Experiment
from experiments.promotion_admin import promotion_offer

from .charts import cumulative_chart_svg, forest_plot_svg
from .power import users_needed_for_mean, users_needed_for_rate
from .selectors import SOURCES, experiment_daily_series, experiment_stats
from .services import experiment_stats_refresh

EXPORT_PERMISSION = "experiments.export_experiment"
DECISION_CLASSES = {"good": "ok", "warn": "warn", "neutral": "neutral", "bad": "bad"}


EXPORT_COLUMNS = [
    "row", "variant", "metric", "is_control", "exposures", "results", "n", "mean", "std",
    "diff", "ci_low", "ci_high", "lift", "lift_ci_low", "lift_ci_high",
    "p_value", "p_value_adjusted", "chance_to_win", "expected_loss", "significant",
]  # fmt: skip


def stats_export_rows(stats: dict) -> Iterator[list]:
    """One CSV row per variant and metric summary, then one per comparison, then the decision."""
    for variant in stats["variants"]:
        base = {"row": "variant", "variant": variant["key"], "is_control": variant["is_control"],
                "exposures": variant["exposures"], "results": variant["results"]}  # fmt: skip
        if not variant["metrics"]:
            yield [base.get(c) for c in EXPORT_COLUMNS]
        for metric, summary in variant["metrics"].items():
            yield [{**base, "metric": metric, **summary}.get(c) for c in EXPORT_COLUMNS]
    for comparison in stats["comparisons"]:
        yield [{"row": "comparison", **comparison}.get(c) for c in EXPORT_COLUMNS]
    decision = stats["decision"]
    yield ["decision", decision["variant"], decision["action"], *[None] * (len(EXPORT_COLUMNS) - 4), decision["reason"]]


class SampleSizeForm(forms.Form):
    kind = forms.ChoiceField(choices=[("mean", "Mean (baseline mean and standard deviation)"), ("rate", "Rate")])
    baseline_mean = forms.FloatField(required=False, help_text="Baseline mean of the per-user metric.")
    baseline_std = forms.FloatField(required=False, min_value=0, help_text="Standard deviation of per-user values.")
    baseline_rate = forms.FloatField(required=False, min_value=0, max_value=1, help_text="e.g. 0.12 for 12%.")
    relative_mde = forms.FloatField(
        label="Relative MDE", initial=0.05, help_text="Relative minimum detectable effect: 0.05 = 5%."
    )
    alpha = forms.FloatField(initial=0.05, min_value=0.0001, max_value=0.5)
    power = forms.FloatField(initial=0.8, min_value=0.05, max_value=0.999)

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        if not data.get("relative_mde"):
            self.add_error("relative_mde", "The minimum detectable effect must not be zero.")
        if data["kind"] == "mean":
            for name in ("baseline_mean", "baseline_std"):
                if data.get(name) in (None, ""):
                    self.add_error(name, "Required for a mean.")
        elif data.get("baseline_rate") in (None, ""):
            self.add_error("baseline_rate", "Required for a rate.")
        return data

    def users_per_variant(self) -> int:
        data = self.cleaned_data
        common = {"relative_mde": data["relative_mde"], "alpha": data["alpha"], "power": data["power"]}
        if data["kind"] == "rate":
            return users_needed_for_rate(baseline_rate=data["baseline_rate"], **common)
        return users_needed_for_mean(baseline_mean=data["baseline_mean"], baseline_std=data["baseline_std"], **common)


def _stats_for(request, model_admin, object_id: str) -> tuple[Experiment, dict, str]:
    experiment = get_object_or_404(Experiment, pk=object_id)
    if not model_admin.has_view_permission(request, experiment):
        raise PermissionDenied
    source = request.GET.get("source", "rollup")
    if source not in SOURCES:
        source = "rollup"
    if source == "rollup":
        experiment_stats_refresh(experiment=experiment)
    return experiment, experiment_stats(experiment=experiment, source=source), source


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:+.2f}%"


def _p_value(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.4f}" if value >= 0.0001 else f"{value:.1e}"


def _number(value: float | None, metric: str) -> str:
    """A metric's number as the page shows it: costs to a millionth of their currency unit (a call
    costs fractions of a cent), everything else to four decimals."""
    if value is None:
        return "—"
    return f"{value:.6f}" if METRICS[metric].unit == "USD" else f"{value:.4f}"


def _metric_heading(metric: str) -> str:
    unit = METRICS[metric].unit
    return f"{metric} ({unit})" if unit else metric


def _tone(comparison: dict, directions: dict[str, bool]) -> str:
    if not comparison["significant"]:
        return ""
    gain = comparison["diff"] if directions.get(comparison["metric"], True) else -comparison["diff"]
    return "sig-good" if gain > 0 else "sig-bad"


def stats_view(request, object_id: str, *, model_admin):
    experiment, stats, source = _stats_for(request, model_admin, object_id)
    directions = {name: metric.higher_is_better for name, metric in METRICS.items()}
    series = experiment_daily_series(experiment=experiment, metric=experiment.primary_metric)
    metrics = [
        experiment.primary_metric,
        *[m for m in experiment.guardrail_metrics or [] if m != experiment.primary_metric],
    ]
    variant_rows = [
        {
            "variant": variant,
            "cells": [
                {"n": summary["n"], "mean": _number(summary["mean"], metric), "std": _number(summary["std"], metric)}
                if (summary := variant["metrics"].get(metric))
                else None
                for metric in metrics
            ],
        }
        for variant in stats["variants"]
    ]
    comparison_rows = [
        {
            **comparison,
            "metric_heading": _metric_heading(comparison["metric"]),
            "diff_text": _number(comparison["diff"], comparison["metric"]),
            "ci_text": (
                f"[{_number(comparison['ci_low'], comparison['metric'])}, "
                f"{_number(comparison['ci_high'], comparison['metric'])}]"
            ),
            "lift_text": _percent(comparison["lift"]),
            "lift_interval": (
                f"[{_percent(comparison['lift_ci_low'])}, {_percent(comparison['lift_ci_high'])}]"
                if comparison["lift_ci_low"] is not None
                else "—"
            ),
            "tone": _tone(comparison, directions),
            "p_text": _p_value(comparison["p_value"]),
            "p_adjusted_text": _p_value(comparison["p_value_adjusted"]),
        }
        for comparison in stats["comparisons"]
    ]
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": Experiment._meta,
        "original": experiment,
        "variant_rows": variant_rows,
        # The decision's colour: red only for a broken setup (SRM), amber to keep the control.
        "decision_class": DECISION_CLASSES.get(stats["decision"]["tone"], "neutral"),
        "comparison_rows": comparison_rows,
        "title": f"Statistics: {experiment.key}",
        "experiment": experiment,
        "stats": stats,
        "source": source,
        "metrics": metrics,
        "metric_headings": [_metric_heading(metric) for metric in metrics],
        "metric_directions": directions,
        "forest_svg": mark_safe(forest_plot_svg(stats["comparisons"], higher_is_better=directions)),  # noqa: S308 - every text in it is escaped
        "cumulative_svg": mark_safe(cumulative_chart_svg(series, metric=experiment.primary_metric)),  # noqa: S308 - every text in it is escaped
        "can_export": request.user.has_perm(EXPORT_PERMISSION),
        "promotion": promotion_offer(user=request.user, experiment=experiment, decision=stats["decision"]),
        "alpha": settings.EXPERIMENT_STATS_ALPHA,
    }
    return TemplateResponse(request, "admin/experiments/experiment/stats.html", context)


def _require_export(request) -> None:
    if not request.user.has_perm(EXPORT_PERMISSION):
        raise PermissionDenied


def _audit_export(request, experiment: Experiment, export_format: str) -> None:
    audit_log(
        actor=request.user,
        action="experiment.stats_exported",
        resource_type="experiments.experiment",
        resource_id=experiment.key,
        details={"format": export_format},
        request=request,
    )


def stats_export_csv(request, object_id: str, *, model_admin):
    _require_export(request)
    experiment, stats, _ = _stats_for(request, model_admin, object_id)
    _audit_export(request, experiment, "csv")
    return stream_csv(stats_export_rows(stats), EXPORT_COLUMNS, filename=f"{experiment.key}-stats.csv")


def stats_export_json(request, object_id: str, *, model_admin):
    _require_export(request)
    experiment, stats, _ = _stats_for(request, model_admin, object_id)
    _audit_export(request, experiment, "json")
    response = HttpResponse(
        json.dumps(stats, cls=DjangoJSONEncoder, indent=2, allow_nan=False), content_type="application/json"
    )
    response["Content-Disposition"] = f'attachment; filename="{experiment.key}-stats.json"'
    return response


def sample_size_view(request, *, model_admin):
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    form = SampleSizeForm(request.GET or None)
    result = None
    if form.is_bound and form.is_valid():
        try:
            per_variant = form.users_per_variant()
        except (ValueError, ValidationFailed) as exc:
            form.add_error(None, str(exc))
        else:
            result = {"per_variant": per_variant, "two_variants": 2 * per_variant}
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": Experiment._meta,
        "title": "Sample size calculator",
        "form": form,
        "result": result,
    }
    return TemplateResponse(request, "admin/experiments/experiment/sample_size.html", context)
