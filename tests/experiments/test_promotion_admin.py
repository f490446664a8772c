"""The admin between experiments and the registry: the promote button on a ``ship`` decision, its
confirmation page (the diff, escaped), the add form prefilled from the prompts admin, variants by version."""

from __future__ import annotations

import pytest
import time_machine
from django.test import Client

from experiments.models import Experiment, ExperimentStatus, Variant
from prompts import services as prompt_services
from prompts.models import Prompt, PromptLabel, PromptVersion

from .conftest import make_user
from .stats import datasets
from .stats.conftest import DAY0, load_dataset
from .test_admin import ADD, admin_form

pytestmark = pytest.mark.django_db

NOW = DAY0.replace(day=3)
SHIPPED = 'Be warm. <script>alert("x")</script>\nSecond line.'


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def winner(admin_user) -> Experiment:
    """A running experiment whose decision is ``ship b``; control on version 1 (production), b on version 2."""
    with time_machine.travel(NOW, tick=False):
        experiment = load_dataset(datasets.clear_win(), key="tone")
    prompt = prompt_services.prompt_create(actor=admin_user, key="support")
    first = prompt_services.prompt_version_create(
        actor=admin_user, prompt=prompt, content="Be helpful.\nSecond line.", labels=["production"]
    )
    second = prompt_services.prompt_version_create(actor=admin_user, prompt=prompt, content=SHIPPED)
    for key, version in (("control", first), ("b", second)):
        Variant.objects.filter(experiment=experiment, key=key).update(prompt_version=version, content=version.content)
    return experiment


def _promote_url(experiment: Experiment, variant: str = "b") -> str:
    return f"/admin/experiments/experiment/{experiment.pk}/promote/{variant}/"


@time_machine.travel(NOW, tick=False)
def test_the_stats_page_offers_the_promotion_of_a_shipped_winner(winner, admin_user):
    page = _client(admin_user).get(f"/admin/experiments/experiment/{winner.pk}/stats/").content.decode()
    assert "Promote b (version 2) to production" in page
    assert _promote_url(winner) in page


@time_machine.travel(NOW, tick=False)
def test_no_promotion_is_offered_to_who_cannot_run_experiments(winner):
    analyst = make_user("analyst")
    page = _client(analyst).get(f"/admin/experiments/experiment/{winner.pk}/stats/").content.decode()
    assert "Promote b" not in page
    assert _client(analyst).get(_promote_url(winner)).status_code == 403


def test_the_confirmation_page_shows_the_escaped_diff(winner, admin_user):
    response = _client(admin_user).get(_promote_url(winner))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Promote b (version 2) to production?" in page
    assert '<span class="diff-del">-Be helpful.</span>' in page
    assert '<span class="diff-add">+Be warm. &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;</span>' in page
    assert '<span class="diff-same"> Second line.</span>' in page
    assert "<script>alert" not in page
    assert 'id="confirm-promotion"' in page


def test_confirming_promotes_and_stops_the_experiment(winner, admin_user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = _client(admin_user).post(_promote_url(winner))
    assert response.status_code == 302
    winner.refresh_from_db()
    assert winner.status == ExperimentStatus.COMPLETED
    assert PromptLabel.objects.get(prompt__key="support", name="production").version.version == 2


def test_an_operator_is_told_to_ask_an_admin_and_nothing_moves(winner, operator):
    client = _client(operator)
    page = client.get(_promote_url(winner)).content.decode()
    assert 'id="not-allowed"' in page and 'id="confirm-promotion"' not in page
    response = client.post(_promote_url(winner), follow=True)
    assert "prompts.move_protected_label" in response.content.decode()
    winner.refresh_from_db()
    assert winner.status == ExperimentStatus.RUNNING
    assert PromptLabel.objects.get(prompt__key="support", name="production").version.version == 1


def test_a_stopped_experiment_cannot_be_promoted_from_the_admin(winner, admin_user):
    Experiment.objects.filter(pk=winner.pk).update(status=ExperimentStatus.COMPLETED)
    page = _client(admin_user).get(_promote_url(winner)).content.decode()
    assert "cannot be promoted" in page and 'id="confirm-promotion"' not in page


@pytest.fixture
def registry(admin_user):
    prompt = prompt_services.prompt_create(actor=admin_user, key="support")
    prompt_services.prompt_version_create(actor=admin_user, prompt=prompt, content="Prod", labels=["production"])
    prompt_services.prompt_version_create(actor=admin_user, prompt=prompt, content="Two")
    prompt_services.prompt_version_create(actor=admin_user, prompt=prompt, content="Three")
    return prompt


def test_the_add_form_is_prefilled_with_production_against_the_challenger(registry, operator):
    response = _client(operator).get(f"{ADD}?target_prompt_type=support&challenger_version=3")
    assert response.status_code == 200
    assert response.context["adminform"].form.initial["target_prompt_type"] == "support"
    forms = response.context["inline_admin_formsets"][0].formset.forms
    assert [
        (f.initial.get("key"), f.initial.get("version"), f.initial.get("is_control", False)) for f in forms[:2]
    ] == [
        ("control", 1, True),
        ("v3", 3, False),
    ]


def test_variants_saved_by_version_number_in_the_admin(registry, operator):
    data = admin_form(
        **{
            "variants-0-content": "",
            "variants-0-version": "1",
            "variants-1-content": "",
            "variants-1-version": "3",
        }
    )
    response = _client(operator).post(ADD, data)
    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    experiment = Experiment.objects.get(key="admin-made")
    assert list(experiment.variants.order_by("position").values_list("prompt_version__version", "content")) == [
        (1, "Prod"),
        (3, "Three"),
    ]
    assert PromptVersion.objects.filter(prompt=Prompt.objects.get(key="support")).count() == 3


def test_editing_a_drafts_text_in_the_admin_makes_a_new_version(operator, make_experiment):
    from .conftest import experiment_body
    from .test_admin import _as_admin_form

    experiment = make_experiment()
    stored = list(experiment.variants.order_by("position"))
    body = experiment_body()
    body["variants"][0]["content"] = "Edited control text."
    data = _as_admin_form(body, stored)
    data.update({"variants-0-version": "1", "variants-1-version": "2"})  # the numbers the form showed
    response = _client(operator).post(f"/admin/experiments/experiment/{experiment.pk}/change/", data)
    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    assert list(experiment.variants.order_by("position").values_list("prompt_version__version", "content")) == [
        (3, "Edited control text."),
        (2, "You are warm and helpful."),
    ]
