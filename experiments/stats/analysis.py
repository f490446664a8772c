"""Assembles the full analysis of one experiment from per-variant aggregates (no database here).

Input: for each variant its key, weight, control flag, exposures, raw result count and, per
metric, the :class:`Moments` of per-user values. Output: the ``srm``, ``variants``,
``comparisons``, ``power`` and ``decision`` sections of ``GET /api/v1/experiments/{key}/stats``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from . import sequential as seq
from .bayesian import bayesian_compare
from .decision import ComparisonView, experiment_decide
from .frequentist import holm_adjust, welch_test
from .moments import Moments
from .power import DEFAULT_ALPHA, DEFAULT_POWER, mde_absolute, users_needed_for_means
from .srm import srm_check


@dataclass(frozen=True, slots=True)
class VariantAggregate:
    key: str
    is_control: bool
    weight: float
    exposures: int
    results: int
    metrics: Mapping[str, Moments] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AnalysisSettings:
    alpha: float = DEFAULT_ALPHA
    power: float = DEFAULT_POWER
    sequential: bool = False
    sequential_tuning: float = seq.DEFAULT_TUNING
    min_users_per_variant: int = 100
    target_mde: float = 0.05


def _finite(value: float | None) -> float | None:
    """JSON has no NaN or infinity: such values are reported as null."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _compare(control: Moments, treatment: Moments, *, higher_is_better: bool, settings: AnalysisSettings) -> dict:
    welch = welch_test(control=control, treatment=treatment, alpha=settings.alpha)
    ci_low, ci_high, p_value = welch.ci.low, welch.ci.high, welch.p_value
    lift_low = welch.lift_ci.low if welch.lift_ci else None
    lift_high = welch.lift_ci.high if welch.lift_ci else None
    if settings.sequential:
        units = control.n + treatment.n
        half = seq.halfwidth(se=welch.se, n=units, alpha=settings.alpha, tuning=settings.sequential_tuning)
        ci_low, ci_high = welch.diff - half, welch.diff + half
        p_value = seq.always_valid_p_value(estimate=welch.diff, se=welch.se, n=units, tuning=settings.sequential_tuning)
        if welch.lift is not None:
            lift_half = seq.halfwidth(
                se=welch.lift_se, n=units, alpha=settings.alpha, tuning=settings.sequential_tuning
            )
            lift_low, lift_high = welch.lift - lift_half, welch.lift + lift_half
    bayes = bayesian_compare(diff=welch.diff, se=welch.se, higher_is_better=higher_is_better)
    return {
        "diff": welch.diff,
        "se": welch.se,
        "ci_low": ci_low,
        "ci_high": ci_high,
        "lift": welch.lift,
        "lift_ci_low": lift_low,
        "lift_ci_high": lift_high,
        "p_value": p_value,
        "chance_to_win": bayes.chance_to_win,
        "expected_loss": bayes.expected_loss,
    }


def experiment_analyse(
    *,
    variants: Sequence[VariantAggregate],
    primary_metric: str,
    guardrail_metrics: Sequence[str],
    higher_is_better: Mapping[str, bool],
    settings: AnalysisSettings,
) -> dict:
    """The statistics sections of the stats contract, computed from aggregates."""
    controls = [v for v in variants if v.is_control]
    if len(controls) != 1:
        raise ValueError("an experiment has exactly one control variant")
    control = controls[0]
    treatments = [v for v in variants if not v.is_control]
    metrics = [primary_metric, *[m for m in guardrail_metrics if m != primary_metric]]

    srm = srm_check(exposures=[v.exposures for v in variants], weights=[v.weight for v in variants])

    comparisons: list[dict] = []
    se_by_variant: dict[str, float] = {}
    for metric in metrics:
        rows = []
        control_moments = control.metrics.get(metric)
        for treatment in treatments:
            treatment_moments = treatment.metrics.get(metric)
            if control_moments is None or treatment_moments is None:
                continue
            if control_moments.n < 2 or treatment_moments.n < 2:
                continue
            row = {"variant": treatment.key, "metric": metric}
            row.update(
                _compare(
                    control_moments,
                    treatment_moments,
                    higher_is_better=higher_is_better[metric],
                    settings=settings,
                )
            )
            if metric == primary_metric:
                se_by_variant[treatment.key] = row["se"]
            rows.append(row)
        # Holm's family is the treatments compared with the control on one metric.
        adjusted = holm_adjust([r["p_value"] for r in rows]) if len(rows) > 1 else [None] * len(rows)
        for row, p_adjusted in zip(rows, adjusted, strict=True):
            row["p_value_adjusted"] = p_adjusted
            deciding_p = p_adjusted if p_adjusted is not None else row["p_value"]
            row["significant"] = deciding_p < settings.alpha
        comparisons.extend(rows)

    power = _power(control, treatments, primary_metric, se_by_variant, settings)
    views = [
        ComparisonView(
            variant=r["variant"],
            metric=r["metric"],
            diff=r["diff"],
            lift=r["lift"],
            ci_low=r["ci_low"],
            ci_high=r["ci_high"],
            p_value=r["p_value_adjusted"] if r["p_value_adjusted"] is not None else r["p_value"],
            chance_to_win=r["chance_to_win"],
            significant=r["significant"],
            higher_is_better=higher_is_better[r["metric"]],
        )
        for r in comparisons
    ]
    decision = experiment_decide(
        control=control.key,
        treatments=[t.key for t in treatments],
        primary_metric=primary_metric,
        comparisons=views,
        srm_ok=srm.ok,
        srm_p_value=srm.p_value,
        primary_users={v.key: (v.metrics[primary_metric].n if primary_metric in v.metrics else 0) for v in variants},
        min_users_per_variant=settings.min_users_per_variant,
        mde_relative=power["mde_rel"],
        target_mde=settings.target_mde,
        users_needed=power["users_needed"],
    )

    public_fields = (
        "diff", "ci_low", "ci_high", "lift", "lift_ci_low", "lift_ci_high",
        "p_value", "p_value_adjusted", "chance_to_win", "expected_loss",
    )  # fmt: skip
    return {
        "srm": {"p_value": _finite(srm.p_value), "ok": srm.ok},
        "variants": [
            {
                "key": v.key,
                "is_control": v.is_control,
                "exposures": v.exposures,
                "results": v.results,
                "metrics": {
                    name: {"n": m.n, "mean": _finite(m.mean), "std": _finite(m.std)}
                    for name, m in v.metrics.items()
                    if m.n > 0
                },
            }
            for v in variants
        ],
        "comparisons": [
            {
                "variant": r["variant"],
                "metric": r["metric"],
                **{name: _finite(r[name]) for name in public_fields},
                "significant": r["significant"],
            }
            for r in comparisons
        ],
        "power": power,
        "decision": decision.as_dict(),
    }


def _power(
    control: VariantAggregate,
    treatments: Sequence[VariantAggregate],
    metric: str,
    se_by_variant: Mapping[str, float],
    settings: AnalysisSettings,
) -> dict:
    """MDE of the least-powered treatment now, and users per variant needed for the target MDE."""
    empty = {"metric": metric, "mde_abs": None, "mde_rel": None, "users_needed": None}
    control_moments = control.metrics.get(metric)
    if control_moments is None or control_moments.n < 2 or not se_by_variant:
        return empty
    mde_abs = max(mde_absolute(se=se, alpha=settings.alpha, power=settings.power) for se in se_by_variant.values())
    baseline = abs(control_moments.mean)
    mde_rel = mde_abs / baseline if baseline > 0 else None
    users_needed = None
    treatment_stds = [t.metrics[metric].std for t in treatments if t.key in se_by_variant]
    absolute_target = settings.target_mde * baseline
    if absolute_target > 0:
        users_needed = max(
            users_needed_for_means(
                std_control=control_moments.std,
                std_treatment=std,
                absolute_mde=absolute_target,
                alpha=settings.alpha,
                power=settings.power,
            )
            for std in treatment_stds
        )
    return {"metric": metric, "mde_abs": _finite(mde_abs), "mde_rel": _finite(mde_rel), "users_needed": users_needed}
