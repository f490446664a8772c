"""The API key admin: create (key shown once), list by prefix, revoke; never delete."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import ApiKey

pytestmark = pytest.mark.django_db

ADD_URL = "/admin/accounts/apikey/add/"
LIST_URL = "/admin/accounts/apikey/"


@pytest.fixture
def admin_client_(user_factory) -> Client:
    client = Client()
    client.force_login(user_factory(role="admin"))
    return client


def create_key(client: Client, agent, **fields):
    data = {"user": agent.pk, "name": "worker-1", "expires_at_0": "", "expires_at_1": "", **fields}
    return client.post(ADD_URL, data)


def shown_key(response) -> str:
    return re.search(r'value="(apk_[^"]+)"', response.content.decode())[1]


def test_created_key_is_shown_once_on_the_page_after_saving(admin_client_, user_factory, api_client):
    agent = user_factory(role="agent", password=None)
    response = create_key(admin_client_, agent)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    raw_key = shown_key(response)
    api_key = ApiKey.objects.get()
    assert raw_key.startswith(f"apk_{api_key.prefix}.")
    assert api_client.get("/api/v1/auth/me", HTTP_AUTHORIZATION=f"Api-Key {raw_key}").json()["role"] == "agent"
    detail = admin_client_.get(f"/admin/accounts/apikey/{api_key.pk}/change/").content.decode()
    assert raw_key.split(".", 1)[1] not in detail and api_key.key_hash not in detail


def test_list_shows_the_prefix_only(admin_client_, agent_key):
    page = admin_client_.get(LIST_URL).content.decode()
    assert agent_key.api_key.prefix in page
    assert agent_key.raw_key.split(".", 1)[1] not in page


def test_expiry_in_the_past_is_a_form_error(admin_client_, user_factory):
    agent = user_factory(role="agent", password=None)
    past = timezone.now() - timedelta(days=1)
    response = create_key(
        admin_client_, agent, expires_at_0=past.strftime("%Y-%m-%d"), expires_at_1=past.strftime("%H:%M:%S")
    )
    assert response.status_code == 200
    assert not ApiKey.objects.exists()
    assert b"must be in the future" in response.content


def test_revoke_action_revokes_and_the_key_stops_working(admin_client_, agent_key, api_client):
    assert api_client.get("/api/v1/auth/me", **agent_key).status_code == 200
    response = admin_client_.post(
        LIST_URL, {"action": "revoke_selected", "_selected_action": [agent_key.api_key.pk]}, follow=True
    )
    assert response.status_code == 200
    agent_key.api_key.refresh_from_db()
    assert agent_key.api_key.revoked_at is not None
    assert api_client.get("/api/v1/auth/me", **agent_key).status_code == 401


def test_keys_cannot_be_deleted_from_the_admin(admin_client_, agent_key):
    assert admin_client_.get(f"/admin/accounts/apikey/{agent_key.api_key.pk}/delete/").status_code == 403
