"""Every validation rule answers with the same message in the API and in the admin."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from agentplatform.errors import ValidationFailed
from experiments.models import Experiment
from experiments.validation import experiment_validate

from .conftest import experiment_body
from .test_validation import INVALID_BODIES

pytestmark = pytest.mark.django_db


def _expected_messages(change: dict) -> list[str]:
    with pytest.raises(ValidationFailed) as raised:
        experiment_validate(experiment_body(**change))
    return [message for messages in raised.value.details.values() for message in messages]


def _admin_data(body: dict) -> dict:
    data = {
        "key": body["key"],
        "name": body["name"],
        "hypothesis": body.get("hypothesis", ""),
        "target_prompt_type": body["target_prompt_type"],
        "primary_metric": body["primary_metric"],
        "guardrail_metrics": body.get("guardrail_metrics", []),
        "target_mde": str(body.get("target_mde", 0.05)),
        "user_percentage": str(body["user_percentage"]),
        "seed": "",
        "variants-TOTAL_FORMS": str(len(body["variants"])),
        "variants-INITIAL_FORMS": "0",
        "variants-MIN_NUM_FORMS": "0",
        "variants-MAX_NUM_FORMS": "1000",
    }
    for index, variant in enumerate(body["variants"]):
        data[f"variants-{index}-key"] = variant["key"]
        data[f"variants-{index}-name"] = variant.get("name", "")
        data[f"variants-{index}-content"] = variant["content"]
        data[f"variants-{index}-weight"] = str(variant["weight"])
        if variant.get("is_control"):
            data[f"variants-{index}-is_control"] = "on"
    return data


def _admin_messages(response) -> str:
    formset = response.context["inline_admin_formsets"][0].formset
    messages = [m for items in response.context["adminform"].form.errors.values() for m in items]
    messages += list(formset.non_form_errors())
    messages += [m for form in formset.forms for items in form.errors.values() for m in items]
    return "\n".join(messages)


@pytest.mark.parametrize(("change", "field"), [c[1:] for c in INVALID_BODIES], ids=[c[0] for c in INVALID_BODIES])
def test_api_and_admin_refuse_with_the_same_message(operator, change, field):
    expected = _expected_messages(change)

    api = Client()
    api.force_login(operator)
    # 1e400 is valid JSON that parses to infinity (DRF refuses the non-standard literal "Infinity").
    body = json.dumps(experiment_body(**change)).replace("Infinity", "1e400")
    response = api.post("/api/v1/experiments/", body, content_type="application/json")
    assert response.status_code == 400
    api_messages = [m for items in response.json()["error"]["details"].values() for m in items]
    assert set(expected) <= set(api_messages)

    admin = Client()
    admin.force_login(operator)
    page = admin.post("/admin/experiments/experiment/add/", _admin_data(experiment_body(**change)))
    assert page.status_code == 200  # the form is shown again with its errors
    shown = _admin_messages(page)
    for message in expected:
        assert message in shown, f"admin lacks {message!r}; it shows:\n{shown}"
    assert not Experiment.objects.exists()
