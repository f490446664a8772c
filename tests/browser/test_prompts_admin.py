"""The prompt registry's admin in a real browser at 1280 px: the diff page and a label move behind its
confirmation, with no horizontal scroll and no console error (CSP included, the ``page`` fixture)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from accounts.models import Role

PASSWORD = "browser-prompts-password-3!"
WIDTH = 1280
LONG_LINE = "Answer in the customer's language; " * 20  # one 700-character line: it must wrap, not scroll

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def operator(transactional_db):
    return get_user_model().objects.create_user(
        "prompt-operator", "o@example.com", PASSWORD, role=Role.OPERATOR, is_staff=True
    )


@pytest.fixture
def prompt(operator):
    from prompts import services

    prompt = services.prompt_create(actor=operator, key="support", description="Support agent")
    services.prompt_version_create(
        actor=operator, prompt=prompt, content=f"Hello {{{{name}}}}.\n{LONG_LINE}\nBe kind.", labels=["staging"]
    )
    services.prompt_version_create(
        actor=operator,
        prompt=prompt,
        content=f"Hi {{{{name}}}}!\n{LONG_LINE}\nBe kind.\nBe brief. <b>not bold</b>",
        config={"model": "m-1", "temperature": 0.2},
        message="friendlier",
    )
    return prompt


def login(page, live_server) -> None:
    page.set_viewport_size({"width": WIDTH, "height": 900})
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "prompt-operator")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")


def assert_no_horizontal_scroll(page) -> None:
    widths = page.evaluate(
        "() => ({scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth})"
    )
    assert widths["scroll"] <= widths["client"], widths


def test_the_diff_page_shows_both_versions_side_by_side_without_horizontal_scroll(page, live_server, prompt):
    login(page, live_server)
    page.goto(f"{live_server.url}/admin/prompts/prompt/{prompt.pk}/change/")
    page.click("#version-table a.diff-link >> nth=0")  # the newest version's diff, against the one before
    page.wait_for_selector(".prompt-diff")
    page.shot("diff-1280")
    assert_no_horizontal_scroll(page)
    replaced = page.locator("tr.diff-replace").first
    assert replaced.locator("td.left").inner_text() == "Hello {{name}}."
    assert replaced.locator("td.right").inner_text() == "Hi {{name}}!"
    inserted = page.locator("tr.diff-insert td.right").first.inner_text()
    assert inserted == "Be brief. <b>not bold</b>"  # shown as text, not rendered
    assert page.locator(".prompt-diff b").count() == 0
    # Against any other version: the same page with another baseline.
    page.select_option("#id_against", "1")
    page.click("text=Compare")
    page.wait_for_selector(".prompt-diff")
    assert "against=1" in page.url


def test_a_label_move_goes_through_its_confirmation_page(page, live_server, prompt):
    from prompts.models import PromptLabel, PromptLabelMove

    login(page, live_server)
    page.goto(f"{live_server.url}/admin/prompts/prompt/{prompt.pk}/change/")
    page.click("#label-table a.label-move-link")
    page.select_option("#id_version", "2")
    page.fill("#id_reason", "friendlier text tested in staging")
    page.click("input[type=submit][value=Continue]")
    page.wait_for_selector("#confirm-move")
    page.shot("confirm-label-move-1280")
    assert_no_horizontal_scroll(page)
    text = page.inner_text("#confirm-move")
    assert "staging" in text and "version 1" in text and "version 2" in text
    assert PromptLabel.objects.get(prompt=prompt, name="staging").version.version == 1  # not yet
    page.click("#confirm-submit")
    page.wait_for_selector(".messagelist")
    assert "moved from version 1 to version 2" in page.inner_text(".messagelist")
    page.shot("prompt-page-after-move-1280")
    assert_no_horizontal_scroll(page)
    assert PromptLabel.objects.get(prompt=prompt, name="staging").version.version == 2
    move = PromptLabelMove.objects.filter(prompt=prompt, label="staging").latest("id")
    assert (move.from_version, move.to_version, move.reason) == (1, 2, "friendlier text tested in staging")
    # The protected label is refused with a message that says why.
    page.goto(f"{live_server.url}/admin/prompts/prompt/{prompt.pk}/labels/move/?label=production&version=2")
    page.click("input[type=submit][value=Continue]")
    assert "needs the permission prompts.move_protected_label" in page.inner_text(".errorlist")
    assert not PromptLabel.objects.filter(prompt=prompt, name="production").exists()


def test_every_prompt_page_fits_1280_px(page, live_server, prompt):
    base = f"{live_server.url}/admin/prompts"
    login(page, live_server)
    for name, path in [
        ("list", "/prompt/"),
        ("prompt", f"/prompt/{prompt.pk}/change/"),
        ("new-version", f"/prompt/{prompt.pk}/versions/new/?from=2"),
        ("preview", f"/prompt/{prompt.pk}/versions/2/preview/?render=1&name=Ana"),
        ("label-move", f"/prompt/{prompt.pk}/labels/move/?label=staging"),
        ("history", f"/prompt/{prompt.pk}/labels/staging/history/"),
        ("version", f"/promptversion/{prompt.versions.get(version=2).pk}/change/"),
        ("moves", "/promptlabelmove/"),
    ]:
        page.goto(base + path)
        page.shot(name)
        assert_no_horizontal_scroll(page)
    page.goto(f"{base}/prompt/{prompt.pk}/versions/2/preview/?render=1&name=Ana")
    assert page.inner_text("#preview-output").startswith("Hi Ana!")
