"""The read-out staff act on: ship, keep running, no difference, or invalid — with its reason.

The rules follow GrowthBook's decision framework ("ship now" when a variation wins its goal
metric with no guardrail failing, "roll back now" when every variation loses or fails a
guardrail, otherwise keep going until powered), mapped onto the four actions of the API:

1. ``invalid`` when the exposures fail the SRM check or some variant has too few users on the
   primary metric to trust a normal approximation;
2. ``ship`` the treatment that is significantly better on the primary metric (in the metric's
   direction) with no guardrail significantly worse — the best one by chance to win if several;
3. ``ship`` the control ("roll back") when every treatment is significantly worse on the
   primary metric or significantly worse on a guardrail;
4. ``no_difference`` when nothing is significant and the test is powered: the minimum
   detectable effect at the current sample size is at most the experiment's ``target_mde``;
5. ``keep_running`` otherwise, naming how many more users per variant the target MDE needs.

Besides ``action`` (kept as it was for API clients) each decision carries what a person reads
first: ``headline``, one sentence that never contradicts the reason ("Keep control: warm is worse
on tokens (+4.0 %)", never "SHIP control" above "Roll back to control"); ``state``, the action
refined (``ship``, ``keep_control``, ``no_difference``, ``keep_running``, ``collecting_data``,
``srm``); and ``tone``, the colour the admin gives it: red (``bad``) only for a sample ratio
mismatch, which means a broken setup; a just-started experiment is ``collecting_data`` in a
neutral colour, not a red "invalid".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ComparisonView:
    """What the decision reads from one treatment-versus-control comparison."""

    variant: str
    metric: str
    diff: float
    lift: float | None
    ci_low: float
    ci_high: float
    p_value: float
    chance_to_win: float
    significant: bool
    higher_is_better: bool

    @property
    def gain(self) -> float:
        """The difference signed so that positive is good for the metric's direction."""
        return self.diff if self.higher_is_better else -self.diff

    @property
    def better(self) -> bool:
        return self.significant and self.gain > 0

    @property
    def worse(self) -> bool:
        return self.significant and self.gain < 0


@dataclass(frozen=True, slots=True)
class Decision:
    action: str
    variant: str | None
    reason: str
    state: str = ""
    headline: str = ""
    tone: str = "neutral"

    def as_dict(self) -> dict:
        return {
            "action": self.action,
            "variant": self.variant,
            "reason": self.reason,
            "state": self.state,
            "headline": self.headline,
            "tone": self.tone,
        }


SHIP = "ship"
KEEP_RUNNING = "keep_running"
NO_DIFFERENCE = "no_difference"
INVALID = "invalid"

# ``state``: the action refined, for people; ``tone``: good (green), warn (amber), neutral, bad (red).
STATE_SHIP, STATE_KEEP_CONTROL, STATE_COLLECTING, STATE_SRM = "ship", "keep_control", "collecting_data", "srm"
GOOD, WARN, NEUTRAL, BAD = "good", "warn", "neutral", "bad"


def _lift(comparison: ComparisonView) -> str:
    """The effect as a headline shows it: the relative lift to one decimal ("+4.0 %"), else the difference."""
    if comparison.lift is not None and math.isfinite(comparison.lift):
        return f"{comparison.lift * 100:+.1f} %"
    return f"{comparison.diff:+.4g}"


def _users_progress(smallest: int, needed: int) -> str:
    return f"{smallest:,} of {needed:,} users per variant needed"


def _percent(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value * 100:+.2f}%"


def _describe(comparison: ComparisonView) -> str:
    effect = f"{_percent(comparison.lift)}" if comparison.lift is not None else f"{comparison.diff:+.4g}"
    return (
        f"{comparison.metric} {effect} (difference {comparison.diff:+.4g}, "
        f"95% CI {comparison.ci_low:+.4g} to {comparison.ci_high:+.4g}, p = {comparison.p_value:.3g})"
    )


def experiment_decide(
    *,
    control: str,
    treatments: Sequence[str],
    primary_metric: str,
    comparisons: Sequence[ComparisonView],
    srm_ok: bool,
    srm_p_value: float | None,
    primary_users: dict[str, int],
    min_users_per_variant: int,
    mde_relative: float | None,
    target_mde: float,
    users_needed: int | None,
) -> Decision:
    """Turns comparisons, the SRM check and power into one action with a reason a person can read."""
    if not srm_ok:
        return Decision(
            INVALID,
            None,
            f"Sample ratio mismatch: exposures do not match the configured weights (chi-square p = {srm_p_value:.2g} "
            "< 0.001). Assignment or exposure logging is broken; do not trust these results.",
            STATE_SRM,
            "Invalid: sample ratio mismatch — assignment or exposure logging is broken",
            BAD,
        )
    smallest = min(primary_users.get(key, 0) for key in [control, *treatments])
    thin = [key for key in [control, *treatments] if primary_users.get(key, 0) < min_users_per_variant]
    if thin:
        counts = ", ".join(f"{key}: {primary_users.get(key, 0)}" for key in thin)
        needed = max(min_users_per_variant, users_needed or 0)
        return Decision(
            INVALID,
            None,
            f"Too little data to judge: fewer than {min_users_per_variant} users with a {primary_metric} value "
            f"in {counts}.",
            STATE_COLLECTING,
            f"Collecting data — {_users_progress(smallest, needed)}",
            NEUTRAL,
        )

    primary = {c.variant: c for c in comparisons if c.metric == primary_metric}
    harms: dict[str, list[ComparisonView]] = {}
    for comparison in comparisons:
        if comparison.metric != primary_metric and comparison.worse:
            harms.setdefault(comparison.variant, []).append(comparison)

    winners = [primary[v] for v in treatments if v in primary and primary[v].better and v not in harms]
    if winners:
        best = max(winners, key=lambda c: (c.chance_to_win, c.gain))
        return Decision(
            SHIP,
            best.variant,
            f"{best.variant} beats {control} on {_describe(best)}, with no guardrail significantly worse.",
            STATE_SHIP,
            f"Ship {best.variant}: {best.variant} is better on {best.metric} ({_lift(best)})",
            GOOD,
        )

    def worst(variant: str) -> list[ComparisonView]:
        comparison = primary.get(variant)
        if comparison is not None and comparison.worse:
            return [comparison]
        return harms.get(variant, [])

    def rejected(variant: str) -> str | None:
        comparison = primary.get(variant)
        if comparison is not None and comparison.worse:
            return f"{variant} is significantly worse on {_describe(comparison)}"
        if variant in harms:
            guardrails = "; ".join(_describe(c) for c in harms[variant])
            return f"{variant} is significantly worse on guardrail {guardrails}"
        return None

    rejections = [rejected(v) for v in treatments]
    if treatments and all(rejections):
        short = "; ".join(
            f"{v} is worse on " + ", ".join(f"{c.metric} ({_lift(c)})" for c in worst(v)) for v in treatments
        )
        return Decision(
            SHIP,
            control,
            "Keep " + control + ": " + "; ".join(rejections) + ".",
            STATE_KEEP_CONTROL,
            f"Keep {control}: {short}",
            WARN,
        )

    blocked = [r for r in rejections if r]
    note = (" " + "; ".join(blocked) + ".") if blocked else ""
    if mde_relative is not None and mde_relative <= target_mde:
        return Decision(
            NO_DIFFERENCE,
            None,
            f"No treatment differs significantly from {control} on {primary_metric}, and the test could detect "
            f"a {mde_relative * 100:.2f}% change (target MDE {target_mde * 100:.2f}%).{note}",
            NO_DIFFERENCE,
            f"No difference: no treatment differs from {control} on {primary_metric}",
            NEUTRAL,
        )
    if users_needed is not None:
        remaining = max(0, users_needed - smallest)
        need = (
            f"about {remaining:,} more users per variant ({users_needed:,} in all) to detect a "
            f"{target_mde * 100:.2f}% change"
        )
    else:
        need = f"more users to detect a {target_mde * 100:.2f}% change"
    current = f" (it can detect {mde_relative * 100:.2f}% now)" if mde_relative is not None else ""
    progress = f" — {_users_progress(smallest, users_needed)}" if users_needed is not None else ""
    return Decision(
        KEEP_RUNNING,
        None,
        f"No significant difference on {primary_metric} yet{current}; needs {need}.{note}",
        KEEP_RUNNING,
        f"Keep running{progress}",
        NEUTRAL,
    )
