"""Every validation rule, with its message; the same function backs the API and the admin."""

from __future__ import annotations

import pytest

from agentplatform.errors import ValidationFailed
from experiments.validation import experiment_validate

from .conftest import experiment_body

CONTROL = {"key": "control", "content": "a", "weight": 1, "is_control": True}
OTHER = {"key": "b", "content": "b", "weight": 1, "is_control": False}

INVALID_BODIES = [
    ("percentage_zero", {"user_percentage": 0}, "user_percentage"),
    ("percentage_negative", {"user_percentage": -5}, "user_percentage"),
    ("percentage_above_100", {"user_percentage": 100.5}, "user_percentage"),
    ("percentage_not_a_number", {"user_percentage": "lots"}, "user_percentage"),
    ("percentage_too_precise", {"user_percentage": 10.00001}, "user_percentage"),
    ("unknown_primary_metric", {"primary_metric": "revenue"}, "primary_metric"),
    ("unknown_guardrail", {"guardrail_metrics": ["latency"]}, "guardrail_metrics"),
    ("primary_also_guardrail", {"guardrail_metrics": ["success_rate"]}, "guardrail_metrics"),
    ("reserved_key", {"key": "growthbook-features"}, "key"),
    ("key_not_a_slug", {"key": "Has Spaces"}, "key"),
    ("missing_name", {"name": ""}, "name"),
    ("bad_prompt_type", {"target_prompt_type": "has space"}, "target_prompt_type"),
    ("mde_zero", {"target_mde": 0}, "target_mde"),
    ("one_variant", {"variants": [CONTROL]}, "variants"),
    ("no_control", {"variants": [dict(CONTROL, is_control=False), OTHER]}, "variants"),
    ("two_controls", {"variants": [CONTROL, dict(OTHER, is_control=True)]}, "variants"),
    ("duplicate_variant_keys", {"variants": [CONTROL, dict(OTHER, key="control")]}, "variants"),
    ("zero_weight", {"variants": [CONTROL, dict(OTHER, weight=0)]}, "variants[1].weight"),
    ("negative_weight", {"variants": [CONTROL, dict(OTHER, weight=-1)]}, "variants[1].weight"),
    ("infinite_weight", {"variants": [CONTROL, dict(OTHER, weight=float("inf"))]}, "variants[1].weight"),
    ("empty_content", {"variants": [CONTROL, dict(OTHER, content=" ")]}, "variants[1].content"),
]


@pytest.mark.parametrize(("change", "field"), [c[1:] for c in INVALID_BODIES], ids=[c[0] for c in INVALID_BODIES])
def test_rule_is_enforced_with_a_message_on_the_field(change, field):
    with pytest.raises(ValidationFailed) as raised:
        experiment_validate(experiment_body(**change))
    assert field in raised.value.details
    assert all(isinstance(message, str) and message for message in raised.value.details[field])


def test_valid_body_passes():
    experiment_validate(experiment_body())


def test_optional_fields_may_be_omitted():
    body = experiment_body()
    for name in ("hypothesis", "guardrail_metrics", "sequential", "target_mde"):
        body.pop(name, None)
    experiment_validate(body)


def test_duplicate_key_message_names_the_key():
    with pytest.raises(ValidationFailed) as raised:
        experiment_validate(experiment_body(variants=[CONTROL, dict(OTHER, key="control")]))
    assert "Duplicate variant key 'control'." in raised.value.details["variants"]
