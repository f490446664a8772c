"""The promotion of a shipped winner in a real browser: the stats page's button, the confirmation page
with the diff being shipped (1280 px wide, no horizontal scroll, no console or CSP error), the promotion."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from accounts.models import Role

PASSWORD = "browser-promote-password-3!"
LONG_LINE = "Always answer in the customer's language; " * 12 + "x" * 300  # wraps, never scrolls sideways
SHIPPED = f"You are warm & helpful. <b>Greet</b> {{{{name}}}}.\n{LONG_LINE}\nClose politely."

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff(transactional_db):
    return get_user_model().objects.create_superuser("promoter", "p@example.com", PASSWORD, role=Role.ADMIN)


@pytest.fixture
def winner(staff):
    from experiments.models import Variant
    from prompts import services as prompt_services
    from tests.experiments.stats import datasets
    from tests.experiments.stats.conftest import load_dataset

    experiment = load_dataset(datasets.clear_win(), key="tone")
    prompt = prompt_services.prompt_create(actor=staff, key="support")
    first = prompt_services.prompt_version_create(
        actor=staff, prompt=prompt, content="You are helpful.\nClose politely.", labels=["production"]
    )
    second = prompt_services.prompt_version_create(actor=staff, prompt=prompt, content=SHIPPED)
    for key, version in (("control", first), ("b", second)):
        Variant.objects.filter(experiment=experiment, key=key).update(prompt_version=version, content=version.content)
    return experiment


def _no_horizontal_scroll(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), page.evaluate(
        "[document.documentElement.scrollWidth, window.innerWidth]"
    )


def test_promoting_the_winner_from_the_stats_page(page, live_server, staff, winner):
    from experiments.models import Experiment
    from prompts.models import PromptLabel

    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "promoter")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")

    page.goto(f"{live_server.url}/admin/experiments/experiment/{winner.pk}/stats/")
    button = page.locator("#promote")
    assert button.inner_text() == "Promote b (version 2) to production"
    button.click()
    page.wait_for_url("**/promote/b/")
    page.wait_for_selector("#diff")
    page.shot("promotion-confirmation")
    _no_horizontal_scroll(page)
    added = page.locator("#diff .diff-add").all_inner_texts()
    assert "+You are warm & helpful. <b>Greet</b> {{name}}." in added  # shown as text, not markup
    assert page.locator("#diff b").count() == 0
    assert page.locator("#diff .diff-del").all_inner_texts() == ["-You are helpful."]

    page.click("#confirm-promotion")
    page.wait_for_url(f"**/admin/experiments/experiment/{winner.pk}/change/")
    page.shot("promoted")
    assert "production now serves version 2" in page.inner_text(".messagelist")
    assert Experiment.objects.get(pk=winner.pk).status == "completed"
    assert PromptLabel.objects.get(prompt__key="support", name="production").version.version == 2
