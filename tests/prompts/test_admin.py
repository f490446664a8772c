"""The registry's admin: list, prompt page, diff, new version, preview, label moves, history, per role."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from prompts import services
from prompts.models import Prompt, PromptLabel, PromptLabelMove, PromptVersion

pytestmark = pytest.mark.django_db

MARKUP = "<script>alert('x')</script>"


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def operator(user_factory):
    return user_factory(role="operator")


@pytest.fixture
def admin_user(user_factory):
    return user_factory(role="admin")


@pytest.fixture
def analyst(user_factory):
    return user_factory(role="analyst")


@pytest.fixture
def prompt(operator) -> Prompt:
    """``support``: v1, v2 (staging), v3 with markup; production on v1 (moved by the system)."""
    prompt = services.prompt_create(actor=operator, key="support", description="Support agent")
    services.prompt_version_create(actor=operator, prompt=prompt, content="Hello {{name}}.\nHow can I help?")
    services.prompt_version_create(
        actor=operator,
        prompt=prompt,
        content="Hi {{name}}!\nHow can I help?\nBe brief.",
        config={"model": "m-1", "temperature": 0.2},
        message="friendlier",
        labels=["staging"],
    )
    services.prompt_version_create(actor=operator, prompt=prompt, content=f"Hi {{{{name}}}} {MARKUP}")
    services.prompt_label_move(actor=None, prompt=prompt, label="production", version=1, reason="first ship")
    return prompt


def url(name: str, *args) -> str:
    return reverse(f"admin:prompts_prompt_{name}", args=args)


# --- list and prompt page -------------------------------------------------------------------------


def test_the_list_shows_production_and_staging_versions_counts_and_searches(operator, prompt):
    services.prompt_create(actor=operator, key="triage", description="Sorts tickets")
    client = client_for(operator)
    page = client.get(reverse("admin:prompts_prompt_changelist"))
    assert page.status_code == 200
    rows = {row.key: row for row in page.context["cl"].result_list}
    assert (rows["support"].production, rows["support"].staging, rows["support"].version_count) == (1, 2, 3)
    assert (rows["triage"].production, rows["triage"].staging, rows["triage"].version_count) == (None, None, 0)
    assert b"v1" in page.content and b"v2" in page.content
    found = client.get(reverse("admin:prompts_prompt_changelist") + "?q=tickets")
    assert [row.key for row in found.context["cl"].result_list] == ["triage"]


def test_the_prompt_page_lists_versions_with_their_labels_and_actions(operator, prompt):
    page = client_for(operator).get(url("change", prompt.pk))
    assert page.status_code == 200
    rows = [(row["version"].version, row["labels"]) for row in page.context["version_rows"]]
    assert rows == [(3, []), (2, ["staging"]), (1, ["production"])]
    content = page.content.decode()
    assert url("diff", prompt.pk, 2) in content
    assert url("preview", prompt.pk, 2) in content
    assert url("new_version", prompt.pk) + "?from=2" in content
    assert url("label_history", prompt.pk, "production") in content
    assert MARKUP not in content  # v3's text is not on this page; its message and labels are escaped anyway
    # The experiment link names the prompt type and the version, for the experiment form to prefill.
    link = next(row["experiment_url"] for row in page.context["version_rows"] if row["version"].version == 2)
    parsed = urlparse(link)
    assert parsed.path == reverse("admin:experiments_experiment_add")
    assert parse_qs(parsed.query) == {"target_prompt_type": ["support"], "challenger_version": ["2"]}
    assert "start an experiment: this version against production" in content


def test_an_analyst_reads_every_page_without_any_button(analyst, prompt):
    client = client_for(analyst)
    page = client.get(url("change", prompt.pk))
    assert page.status_code == 200
    content = page.content.decode()
    assert url("new_version", prompt.pk) not in content
    assert url("label_move", prompt.pk) not in content
    assert "start an experiment" not in content
    assert not page.context["has_change_permission"]
    assert client.get(url("diff", prompt.pk, 2)).status_code == 200
    assert client.get(url("preview", prompt.pk, 2)).status_code == 200
    assert client.get(url("label_history", prompt.pk, "production")).status_code == 200
    assert (
        client.get(reverse("admin:prompts_promptversion_change", args=[prompt.versions.get(version=1).pk])).status_code
        == 200
    )
    # ...and is refused every write.
    assert client.get(url("new_version", prompt.pk)).status_code == 403
    assert client.post(url("new_version", prompt.pk), {"content": "x"}).status_code == 403
    assert client.get(url("label_move", prompt.pk)).status_code == 403
    assert (
        client.post(url("label_move", prompt.pk), {"label": "staging", "version": 3, "confirmed": "yes"}).status_code
        == 403
    )
    assert client.get(reverse("admin:prompts_prompt_add")).status_code == 403
    assert PromptVersion.objects.filter(prompt=prompt).count() == 3
    assert PromptLabel.objects.get(prompt=prompt, name="staging").version.version == 2


def test_an_agent_cannot_open_the_admin(user_factory, prompt):
    agent = user_factory(role="agent")
    response = client_for(agent).get(url("diff", prompt.pk, 2))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


# --- creating and changing prompts through the services -------------------------------------------


def test_adding_a_prompt_goes_through_the_service_and_is_audited(operator, django_capture_on_commit_callbacks):
    client = client_for(operator)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:prompts_prompt_add"),
            {"key": "welcome", "description": "Greets", "protected_labels": "production, staging"},
        )
    assert response.status_code == 302, response.content
    prompt = Prompt.objects.get(key="welcome")
    assert prompt.protected_labels == ["production", "staging"] and prompt.created_by == operator
    assert AuditEvent.objects.filter(action="prompt.created", resource_id="welcome").count() == 1
    refused = client.post(reverse("admin:prompts_prompt_add"), {"key": "resolve", "protected_labels": "latest"})
    assert refused.status_code == 200
    errors = refused.context["adminform"].form.errors
    assert "reserved" in errors["key"][0] and "latest" in errors["protected_labels"][0]


def test_changing_protection_needs_the_permission(operator, admin_user, prompt):
    change = url("change", prompt.pk)
    response = client_for(operator).post(change, {"description": "New", "protected_labels": ""}, follow=True)
    assert "needs the permission" in response.content.decode()
    prompt.refresh_from_db()
    assert prompt.protected_labels == ["production"] and prompt.description == "Support agent"
    assert (
        client_for(operator).post(change, {"description": "New", "protected_labels": "production"}).status_code == 302
    )
    prompt.refresh_from_db()
    assert prompt.description == "New"
    client_for(admin_user).post(change, {"description": "New", "protected_labels": "production, canary"})
    prompt.refresh_from_db()
    assert prompt.protected_labels == ["production", "canary"]


def test_prompts_are_never_deleted_in_the_admin(admin_user, prompt):
    client = client_for(admin_user)
    assert client.get(url("delete", prompt.pk)).status_code == 403
    assert Prompt.objects.filter(pk=prompt.pk).exists()


# --- versions are read-only -----------------------------------------------------------------------


def test_versions_are_read_only_in_the_admin_even_for_admins(admin_user, prompt):
    client = client_for(admin_user)
    version = prompt.versions.get(version=2)
    change = reverse("admin:prompts_promptversion_change", args=[version.pk])
    page = client.get(change)
    assert page.status_code == 200
    assert not page.context["has_change_permission"] and not page.context["has_delete_permission"]
    assert "Hi {{name}}!" in page.content.decode()
    assert url("diff", prompt.pk, 2) in page.content.decode()
    client.post(change, {"content": "changed", "message": "x"})
    assert client.get(reverse("admin:prompts_promptversion_delete", args=[version.pk])).status_code == 403
    assert client.get(reverse("admin:prompts_promptversion_add")).status_code == 403
    version = PromptVersion.objects.get(pk=version.pk)
    assert version.content == "Hi {{name}}!\nHow can I help?\nBe brief." and version.message == "friendlier"


# --- diff ------------------------------------------------------------------------------------------


def test_the_diff_compares_with_the_previous_version_by_default_and_any_other_on_request(operator, prompt):
    client = client_for(operator)
    page = client.get(url("diff", prompt.pk, 2))
    assert page.status_code == 200
    assert page.context["old"].version == 1 and page.context["new"].version == 2
    kinds = [(row.kind, row.left, row.right) for row in page.context["content_diff"].rows]
    assert kinds == [
        ("replace", "Hello {{name}}.", "Hi {{name}}!"),
        ("equal", "How can I help?", "How can I help?"),
        ("insert", "", "Be brief."),
    ]
    assert page.context["config_diff"].changed
    other = client.get(url("diff", prompt.pk, 3) + "?against=1")
    assert other.context["old"].version == 1
    first = client.get(url("diff", prompt.pk, 1))
    assert first.context["old"] is None and first.status_code == 200
    assert client.get(url("diff", prompt.pk, 9)).status_code == 404
    assert client.get(url("diff", prompt.pk, 2) + "?against=x").status_code == 404
    assert client.get(url("diff", prompt.pk, 2) + "?against=99999999999").status_code == 404


def test_markup_in_a_version_is_escaped_in_the_diff(operator, prompt):
    page = client_for(operator).get(url("diff", prompt.pk, 3))
    content = page.content.decode()
    assert MARKUP not in content
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in content


# --- new version from this one ---------------------------------------------------------------------


def test_new_version_form_is_prefilled_from_the_chosen_version(operator, prompt):
    page = client_for(operator).get(url("new_version", prompt.pk) + "?from=2")
    assert page.status_code == 200
    form = page.context["form"]
    assert form.initial["content"] == "Hi {{name}}!\nHow can I help?\nBe brief."
    assert '"temperature": 0.2' in form.initial["config"]
    assert form.initial["message"] == "From version 2"
    latest = client_for(operator).get(url("new_version", prompt.pk))
    assert latest.context["source"].version == 3


def test_saving_a_new_version_calls_the_service_and_moves_labels(operator, prompt, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(operator).post(
            url("new_version", prompt.pk),
            {
                "content": "Hey {{name}}",
                "config": '{"model": "m-2"}',
                "message": "shorter",
                "labels": "staging, canary",
            },
        )
    assert response.status_code == 302
    version = prompt.versions.get(version=4)
    assert (version.content, version.config, version.message, version.created_by) == (
        "Hey {{name}}",
        {"model": "m-2"},
        "shorter",
        operator,
    )
    assert dict(prompt.labels.values_list("name", "version__version")) == {"production": 1, "staging": 4, "canary": 4}
    assert AuditEvent.objects.filter(action="prompt.version_created", details__version=4).count() == 1


def test_a_new_version_refuses_bad_json_and_protected_labels_without_the_permission(operator, admin_user, prompt):
    client = client_for(operator)
    bad = client.post(url("new_version", prompt.pk), {"content": "x", "config": "{not json"})
    assert bad.status_code == 200 and "config" in bad.context["form"].errors
    not_object = client.post(url("new_version", prompt.pk), {"content": "x", "config": "[1]"})
    assert "config" in not_object.context["form"].errors
    protected = client.post(url("new_version", prompt.pk), {"content": "Ship", "labels": "production"})
    assert protected.status_code == 200
    assert "prompts.move_protected_label" in " ".join(protected.context["form"].non_field_errors())
    assert PromptVersion.objects.filter(prompt=prompt).count() == 3
    allowed = client_for(admin_user).post(url("new_version", prompt.pk), {"content": "Ship", "labels": "production"})
    assert allowed.status_code == 302
    assert prompt.labels.get(name="production").version.version == 4


# --- preview ---------------------------------------------------------------------------------------


def test_the_preview_has_a_field_per_variable_and_renders_the_version(operator, prompt):
    client = client_for(operator)
    services.prompt_version_create(actor=operator, prompt=prompt, content="Dear {{name}}, about {{topic}}: {{name}}")
    empty = client.get(url("preview", prompt.pk, 4))
    assert list(empty.context["form"].fields) == ["name", "topic"] and empty.context["compiled"] is None
    rendered = client.get(url("preview", prompt.pk, 4), {"render": "1", "name": "Ana <b>", "topic": "billing"})
    assert rendered.context["compiled"] == "Dear Ana <b>, about billing: Ana <b>"
    assert "Dear Ana &lt;b&gt;, about billing" in rendered.content.decode()
    missing = client.get(url("preview", prompt.pk, 4), {"render": "1", "name": "Ana"})
    assert missing.context["compiled"] is None
    assert missing.context["form"].errors == {"topic": ["Missing variable 'topic': the prompt uses {{topic}}."]}


# --- label moves -----------------------------------------------------------------------------------


def test_a_label_move_shows_a_confirmation_then_moves_through_the_service(
    operator, prompt, django_capture_on_commit_callbacks
):
    client = client_for(operator)
    form = client.get(url("label_move", prompt.pk) + "?label=staging&version=3")
    assert form.status_code == 200 and form.context["form"].initial == {"label": "staging", "version": "3"}
    confirm = client.post(url("label_move", prompt.pk), {"label": "staging", "version": "3", "reason": "try v3"})
    assert confirm.status_code == 200
    assert confirm.context["from_version"] == 2 and confirm.context["version"] == 3
    assert url("diff", prompt.pk, 3) + "?against=2" in confirm.content.decode()
    assert prompt.labels.get(name="staging").version.version == 2  # nothing moved yet
    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(
            url("label_move", prompt.pk), {"label": "staging", "version": "3", "reason": "try v3", "confirmed": "yes"}
        )
    assert done.status_code == 302
    assert prompt.labels.get(name="staging").version.version == 3
    move = PromptLabelMove.objects.filter(prompt=prompt, label="staging").latest("id")
    assert (move.from_version, move.to_version, move.actor, move.reason) == (2, 3, operator, "try v3")
    event = AuditEvent.objects.filter(action="prompt.label_moved", resource_id="support").latest("id")
    assert event.details["to_version"] == 3 and event.details["reason"] == "try v3"


def test_a_protected_label_is_refused_to_an_operator_with_a_clear_message(operator, admin_user, prompt):
    client = client_for(operator)
    for data in (
        {"label": "production", "version": "2"},
        {"label": "production", "version": "2", "confirmed": "yes"},
    ):
        response = client.post(url("label_move", prompt.pk), data)
        assert response.status_code == 200
        [message] = response.context["form"].errors["label"]
        assert "protected label" in message and "prompts.move_protected_label" in message
    assert prompt.labels.get(name="production").version.version == 1
    # The prompt page offers no "move" link on the protected label to the operator.
    page = client_for(operator).get(url("change", prompt.pk))
    production = next(row for row in page.context["prompt_labels"] if row["label"].name == "production")
    assert production["protected"] and not production["movable"]
    done = client_for(admin_user).post(
        url("label_move", prompt.pk), {"label": "production", "version": "2", "confirmed": "yes"}
    )
    assert done.status_code == 302
    assert prompt.labels.get(name="production").version.version == 2


def test_a_label_move_refuses_latest_and_unknown_versions(operator, prompt):
    client = client_for(operator)
    latest = client.post(url("label_move", prompt.pk), {"label": "latest", "version": "2", "confirmed": "yes"})
    assert "label" in latest.context["form"].errors
    unknown = client.post(url("label_move", prompt.pk), {"label": "staging", "version": "9", "confirmed": "yes"})
    assert "version" in unknown.context["form"].errors
    assert prompt.labels.get(name="staging").version.version == 2


def test_the_label_history_lists_moves_newest_first(operator, admin_user, prompt):
    services.prompt_label_move(actor=operator, prompt=prompt, label="staging", version=3, reason="try")
    services.prompt_label_move(actor=admin_user, prompt=prompt, label="staging", version=2, reason="back")
    page = client_for(operator).get(url("label_history", prompt.pk, "staging"))
    assert page.status_code == 200
    moves = [(m.from_version, m.to_version, m.reason) for m in page.context["page"]]
    assert moves == [(3, 2, "back"), (2, 3, "try"), (None, 2, "friendlier")]
    assert page.context["current"].version.version == 2
    assert client_for(operator).get(url("label_history", prompt.pk, "latest")).status_code == 404


def test_text_typed_in_the_admin_is_stored_with_the_apis_line_ends(operator, prompt):
    form = {"content": "Line one\r\nLine two\r\n", "config": "", "message": "", "labels": ""}
    response = client_for(operator).post(url("new_version", prompt.pk), form)
    assert response.status_code == 302
    assert prompt.versions.order_by("-version").first().content == "Line one\nLine two\n"
