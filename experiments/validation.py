"""The rules an experiment's input must satisfy: one set, checked where input enters — the API's
input serializers (``experiments.serializers``) and the admin's form and variants formset — so a
rule reads the same on both surfaces. What depends on the experiment's state (a started
experiment's frozen fields, a key already taken) is the services' business.

Each function returns ``{field: [message, ...]}`` (empty when valid); ``experiment_validate``
raises ``ValidationFailed`` with those details. Variant errors are keyed ``variants`` (rules on
the list) or ``variants[i].field``. ``instance`` is the experiment a partial change applies to:
rules across fields (a guardrail that is also the primary metric) see its current values.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from agentplatform.errors import ValidationFailed
from agentplatform.ingest import clean_text, finite
from experiments.metric_catalogue import METRICS
from experiments.models import Experiment
from prompts.models import LABEL_HELP, LABEL_PATTERN

RESERVED_KEYS = frozenset({"growthbook-features", "exposures"})
KEY_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,98}[a-z0-9])?$")
VARIANT_KEY_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
PROMPT_TYPE_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
MIN_VARIANTS = 2
MAX_VARIANTS = 20

Errors = dict[str, list[str]]

# Messages the admin's per-field form validation reuses, so both surfaces say the same thing.
CONTENT_REQUIRED = "Give the prompt's content or a prompt_version (only the control may leave both out)."
PROMPT_VERSION_INVALID = "A version number (1, 2, …) of the experiment's prompt."
WEIGHT_INVALID = "The weight must be a finite number above 0."
VARIANT_KEY_INVALID = "Use 1-100 letters, digits, '_' or '-'."


def _add(errors: Errors, field: str, message: str) -> None:
    errors.setdefault(field, []).append(message)


def _as_decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        return None
    return number if number.is_finite() else None


def validate_experiment_fields(data: Mapping[str, Any], *, instance: Experiment | None = None) -> Errors:
    """Rules on the experiment's own fields (everything but its variants)."""
    errors: Errors = {}
    key = data.get("key", instance.key if instance else "")
    if instance is None or ("key" in data and data["key"] != instance.key):
        if instance is not None:
            _add(errors, "key", "The key cannot change after creation.")
        elif not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
            _add(
                errors,
                "key",
                "Use 1-100 lowercase letters, digits and hyphens, starting and ending with a letter or digit.",
            )
        elif key in RESERVED_KEYS:
            _add(errors, "key", f"The key '{key}' is reserved.")

    if instance is None or "name" in data:
        name = data.get("name")
        if not isinstance(name, str) or not name.strip():
            _add(errors, "name", "A name is required.")
        elif len(name) > 200:
            _add(errors, "name", "At most 200 characters.")

    if instance is None or "target_prompt_type" in data:
        prompt_type = data.get("target_prompt_type")
        if not isinstance(prompt_type, str) or not PROMPT_TYPE_PATTERN.fullmatch(prompt_type):
            _add(errors, "target_prompt_type", "Use 1-100 letters, digits, '_', '.', ':' or '-'.")

    if instance is None or "primary_metric" in data:
        metric = data.get("primary_metric")
        if not isinstance(metric, str) or metric not in METRICS:
            _add(errors, "primary_metric", f"Unknown metric '{metric}'; choose one of {', '.join(METRICS)}.")

    guardrails = data.get("guardrail_metrics", [] if instance is None else instance.guardrail_metrics)
    if guardrails is None:
        guardrails = []
    if not isinstance(guardrails, list | tuple):
        _add(errors, "guardrail_metrics", "Give a list of metric names.")
    else:
        unknown = [m for m in guardrails if not isinstance(m, str) or m not in METRICS]
        if unknown:
            _add(
                errors,
                "guardrail_metrics",
                f"Unknown metric(s) {', '.join(map(str, unknown))}; choose from {', '.join(METRICS)}.",
            )
        if len(set(map(str, guardrails))) != len(guardrails):
            _add(errors, "guardrail_metrics", "A metric is listed twice.")
        primary = data.get("primary_metric", instance.primary_metric if instance else None)
        if primary in guardrails:
            _add(errors, "guardrail_metrics", "The primary metric cannot also be a guardrail.")

    if instance is None or "user_percentage" in data:
        percentage = _as_decimal(data.get("user_percentage"))
        if percentage is None:
            _add(errors, "user_percentage", "Give a number of percent, more than 0 and at most 100.")
        elif not (0 < percentage <= 100):
            _add(errors, "user_percentage", "Must be more than 0 and at most 100 (percent of the prompt type's users).")
        elif percentage != percentage.quantize(Decimal("0.0001")):
            _add(errors, "user_percentage", "At most 4 decimal places.")

    if "target_mde" in data and data["target_mde"] is not None:
        mde = data["target_mde"]
        if isinstance(mde, bool) or not isinstance(mde, int | float) or not math.isfinite(mde) or not 0 < mde < 10:
            _add(errors, "target_mde", "A relative effect above 0 and below 10 (0.05 = 5%).")

    if "seed" in data and data["seed"] is not None:
        seed = data["seed"]
        if not isinstance(seed, str) or len(seed) > 100:
            _add(errors, "seed", "At most 100 characters.")
    return errors


def validate_variants(variants: Any) -> Errors:
    """Rules on the variants list: two or more, one control, positive weights, unique keys."""
    errors: Errors = {}
    if not isinstance(variants, Sequence) or isinstance(variants, str):
        _add(errors, "variants", "Give a list of variants.")
        return errors
    if len(variants) < MIN_VARIANTS:
        _add(errors, "variants", f"An experiment needs at least {MIN_VARIANTS} variants.")
    if len(variants) > MAX_VARIANTS:
        _add(errors, "variants", f"At most {MAX_VARIANTS} variants.")
    seen: set[str] = set()
    controls = 0
    for index, variant in enumerate(variants):
        prefix = f"variants[{index}]"
        if not isinstance(variant, Mapping):
            _add(errors, prefix, "Each variant is an object.")
            continue
        key = variant.get("key")
        if not isinstance(key, str) or not VARIANT_KEY_PATTERN.fullmatch(key):
            _add(errors, f"{prefix}.key", VARIANT_KEY_INVALID)
        elif key in seen:
            _add(errors, "variants", f"Duplicate variant key '{key}'.")
        else:
            seen.add(key)
        content, version = variant.get("content"), variant.get("prompt_version")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
            _add(errors, f"{prefix}.prompt_version", PROMPT_VERSION_INVALID)
        if content is not None and not isinstance(content, str):
            _add(errors, f"{prefix}.content", CONTENT_REQUIRED)
        elif version is None and (content is None or not content.strip()) and variant.get("is_control") is not True:
            # The control may name neither: it gets the version under production when the experiment starts.
            _add(errors, f"{prefix}.content", CONTENT_REQUIRED)
        weight = variant.get("weight", 1)
        if (
            isinstance(weight, bool)
            or not isinstance(weight, int | float)
            or not math.isfinite(weight)
            or weight <= 0
            or weight > 1_000_000
        ):
            _add(errors, f"{prefix}.weight", WEIGHT_INVALID)
        name = variant.get("name", "")
        if name is not None and (not isinstance(name, str) or len(name) > 200):
            _add(errors, f"{prefix}.name", "At most 200 characters.")
        if variant.get("is_control") is True:
            controls += 1
        elif variant.get("is_control") not in (False, None):
            _add(errors, f"{prefix}.is_control", "true or false.")
    if controls != 1 and isinstance(variants, Sequence) and variants:
        _add(errors, "variants", f"Exactly one variant must be the control ({controls} marked).")
    return errors


def _nul_paths(value: Any, path: str = "") -> list[str]:
    """Where a string holding U+0000 sits in the body (PostgreSQL text cannot store it)."""
    if isinstance(value, str):
        return [path or "non_field_errors"] if "\x00" in value else []
    if isinstance(value, Mapping):
        return [p for key, item in value.items() for p in _nul_paths(item, f"{path}.{key}" if path else str(key))]
    if isinstance(value, list | tuple):
        return [p for index, item in enumerate(value) for p in _nul_paths(item, f"{path}[{index}]")]
    return []


def experiment_validate(data: Mapping[str, Any], *, instance: Experiment | None = None) -> None:
    """Raise ``ValidationFailed`` naming every broken rule (fields and variants together)."""
    errors = validate_experiment_fields(data, instance=instance)
    if instance is None or "variants" in data:
        errors.update(validate_variants(data.get("variants")))
    errors.update({path: ["Must not contain NUL characters."] for path in _nul_paths(data)})
    if errors:
        raise ValidationFailed("The experiment is not valid.", details=errors)


def resolve_request_errors(data: Mapping[str, Any]) -> Errors:
    """The errors of a resolve request body by field (empty when valid): checked by hand, resolve is the hot path.

    ``ResolveRequestSerializer`` describes the same body for the schema (parity-tested).
    """
    errors: Errors = {}
    user_id, prompt_type, default_prompt = data.get("user_id"), data.get("prompt_type"), data.get("default_prompt")
    if not isinstance(user_id, str) or not user_id or len(user_id) > 255 or clean_text(user_id):
        errors["user_id"] = ["A non-empty string of at most 255 characters (no NUL)."]
    if not isinstance(prompt_type, str) or not prompt_type or len(prompt_type) > 100 or clean_text(prompt_type):
        errors["prompt_type"] = ["A non-empty string of at most 100 characters (no NUL)."]
    if default_prompt is not None and (not isinstance(default_prompt, str) or clean_text(default_prompt)):
        errors["default_prompt"] = ["A string (no NUL) or null."]
    label = data.get("label")
    if label is not None and (not isinstance(label, str) or not LABEL_PATTERN.fullmatch(label)):
        errors["label"] = [f"A label name: {LABEL_HELP}"]
    variables = data.get("variables")
    if variables is not None:
        problem = variables_problem(variables)
        if problem:
            errors["variables"] = [problem]
    return errors


# Bounds of resolve's ``variables``: the body limit caps the total; these keep one call's work small.
VARIABLES_MAX_ITEMS = 100
VARIABLE_NAME_MAX_CHARS = 100
VARIABLE_VALUE_MAX_CHARS = 20_000


def variables_problem(variables: Any) -> str | None:
    """Why ``variables`` cannot fill a prompt's placeholders (None when it can).

    An object of at most ``VARIABLES_MAX_ITEMS`` names, each a string of 1-100 characters, whose
    values are strings (no NUL, at most ``VARIABLE_VALUE_MAX_CHARS``), finite numbers, booleans or null.
    """
    if not isinstance(variables, Mapping):
        return "An object of variable names and values."
    if len(variables) > VARIABLES_MAX_ITEMS:
        return f"At most {VARIABLES_MAX_ITEMS} variables."
    for name, value in variables.items():
        if not isinstance(name, str) or not name or len(name) > VARIABLE_NAME_MAX_CHARS or clean_text(name):
            return f"Variable names are strings of 1-{VARIABLE_NAME_MAX_CHARS} characters (no NUL)."
        if isinstance(value, str):
            if len(value) > VARIABLE_VALUE_MAX_CHARS or clean_text(value):
                return f"'{name}': a string of at most {VARIABLE_VALUE_MAX_CHARS} characters (no NUL)."
        elif (
            value is not None and not isinstance(value, bool) and not (isinstance(value, int | float) and finite(value))
        ):
            return f"'{name}': a string, a finite number, true, false or null."
    return None
