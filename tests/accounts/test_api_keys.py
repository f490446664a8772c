"""Agent API keys: authentication, caching, revocation, expiry, and the key never stored or logged."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
import time_machine
from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIRequestFactory

from accounts.authentication import ApiKeyAuthentication
from accounts.models import ApiKey
from accounts.services import api_key_create, api_key_revoke

pytestmark = pytest.mark.django_db

ME_URL = "/api/v1/auth/me"


def test_agent_authenticates_with_its_key_and_sees_its_role(api_client, agent_key):
    response = api_client.get(ME_URL, **agent_key)
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == agent_key.user.pk
    assert body["username"] == agent_key.user.username
    assert body["role"] == "agent"


def test_request_auth_is_the_api_key_with_its_id(agent_key):
    request = APIRequestFactory().get(ME_URL, **agent_key)
    user, auth = ApiKeyAuthentication().authenticate(request)
    assert isinstance(auth, ApiKey) and auth.id == agent_key.api_key.id
    assert user.pk == agent_key.user.pk and user.role == "agent"


@pytest.mark.parametrize(
    "header",
    ["Api-Key apk_nosuchprefix.secret", "Api-Key not-a-key", "Api-Key ", "Api-Key apk_.x"],
)
def test_unknown_or_malformed_keys_get_a_401_envelope(api_client, header):
    response = api_client.get(ME_URL, HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_right_prefix_with_wrong_secret_is_refused(api_client, agent_key):
    prefix_part = agent_key.raw_key.split(".")[0]
    response = api_client.get(ME_URL, HTTP_AUTHORIZATION=f"Api-Key {prefix_part}.wrong-secret")
    assert response.status_code == 401


def test_steady_state_key_verification_costs_no_query(api_client, agent_key, django_assert_num_queries):
    api_client.get(ME_URL, **agent_key)  # first use: reads the key, caches it, touches last_used_at
    with django_assert_num_queries(0):
        response = api_client.get(ME_URL, **agent_key)
    assert response.status_code == 200


def test_revocation_is_honoured_on_the_next_request(api_client, agent_key, audit_events):
    assert api_client.get(ME_URL, **agent_key).status_code == 200  # now cached
    api_key_revoke(api_key=agent_key.api_key, actor=None)
    assert api_client.get(ME_URL, **agent_key).status_code == 401
    assert audit_events.of("api_key.revoked")


def test_a_request_that_verified_a_key_just_before_its_revocation_cannot_cache_it_back(
    api_client, agent_key, monkeypatch, django_capture_on_commit_callbacks
):
    from django.core.cache import cache

    from accounts import authentication
    from accounts.services import api_key_cache_key

    read_from_the_database = authentication._snapshot_of

    def revoked_meanwhile(api_key):
        snapshot = read_from_the_database(api_key)  # the key is still usable in this read
        with django_capture_on_commit_callbacks(execute=True):  # the revocation commits in between
            api_key_revoke(api_key=ApiKey.objects.get(pk=api_key.pk), actor=None)
        return snapshot

    monkeypatch.setattr(authentication, "_snapshot_of", revoked_meanwhile)
    api_client.get(ME_URL, **agent_key)  # the racing request: it began before the revocation
    assert cache.get(api_key_cache_key(agent_key.api_key.prefix)) == {}  # the tombstone, not the key
    assert api_client.get(ME_URL, **agent_key).status_code == 401
    assert api_client.get(ME_URL, **agent_key).status_code == 401


def test_a_forgotten_key_is_not_remembered_by_a_reader_that_fetched_it_before():
    from accounts.cache import LocalMemo

    memo = LocalMemo(lambda: 60)
    generation = memo.generation  # a reader starts fetching
    memo.forget("prefix")  # a revocation in this process
    memo.set("prefix", {"key_id": 1}, generation=generation)
    assert memo.get("prefix") is None
    memo.set("prefix", {"key_id": 1}, generation=memo.generation)
    assert memo.get("prefix") == {"key_id": 1}


def test_revocation_that_missed_the_cache_is_honoured_within_the_ttl(api_client, agent_key, locmem_cache):
    assert api_client.get(ME_URL, **agent_key).status_code == 200
    ApiKey.objects.filter(pk=agent_key.api_key.pk).update(revoked_at=timezone.now())  # no cache delete
    ttl = settings.API_KEY_CACHE_SECONDS
    with time_machine.travel(timezone.now() + timedelta(seconds=ttl + 1)):
        assert api_client.get(ME_URL, **agent_key).status_code == 401


@pytest.fixture
def shared_cache_reads(monkeypatch):
    """Counts the reads API-key authentication makes from the shared cache."""
    from accounts import authentication

    reads: list[str] = []
    real = authentication.cache_get

    def counting(key, default=None):
        reads.append(key)
        return real(key, default)

    monkeypatch.setattr(authentication, "cache_get", counting)
    return reads


def test_a_process_reuses_a_verified_key_without_reading_the_shared_cache(api_client, agent_key, shared_cache_reads):
    for _ in range(3):
        assert api_client.get(ME_URL, **agent_key).status_code == 200
    assert len(shared_cache_reads) == 1


def test_a_wrong_secret_with_a_known_prefix_is_refused_from_the_local_copy(api_client, agent_key):
    assert api_client.get(ME_URL, **agent_key).status_code == 200
    header = agent_key["HTTP_AUTHORIZATION"]
    forged = header[:-4] + ("AAAA" if not header.endswith("AAAA") else "BBBB")
    assert api_client.get(ME_URL, HTTP_AUTHORIZATION=forged).status_code == 401


def test_another_process_revoking_a_key_is_honoured_here_within_the_local_seconds(api_client, agent_key):
    from accounts.services import api_key_cache_key

    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        assert api_client.get(ME_URL, **agent_key).status_code == 200  # now held by this process
        # What api_key_revoke does in another process: the row, and the shared cache entry.
        ApiKey.objects.filter(pk=agent_key.api_key.pk).update(revoked_at=start)
        from django.core.cache import cache

        cache.delete(api_key_cache_key(agent_key.api_key.prefix))
        clock.shift(timedelta(seconds=settings.API_KEY_LOCAL_CACHE_SECONDS + 0.1))
        assert api_client.get(ME_URL, **agent_key).status_code == 401


def test_local_copies_can_be_switched_off(api_client, agent_key, shared_cache_reads, settings):
    settings.API_KEY_LOCAL_CACHE_SECONDS = 0
    for _ in range(3):
        assert api_client.get(ME_URL, **agent_key).status_code == 200
    assert len(shared_cache_reads) == 3


def test_expired_key_is_refused(api_client, user_factory):
    agent = user_factory(role="agent", password=None)
    _, raw_key = api_key_create(user=agent, expires_at=timezone.now() + timedelta(hours=1))
    header = {"HTTP_AUTHORIZATION": f"Api-Key {raw_key}"}
    assert api_client.get(ME_URL, **header).status_code == 200
    with time_machine.travel(timezone.now() + timedelta(hours=1, seconds=1)):
        assert api_client.get(ME_URL, **header).status_code == 401


def test_key_of_a_deactivated_agent_is_refused_at_once(api_client, agent_key):
    assert api_client.get(ME_URL, **agent_key).status_code == 200
    agent_key.user.is_active = False
    agent_key.user.save()
    assert api_client.get(ME_URL, **agent_key).status_code == 401


def test_last_used_at_moves_at_most_once_a_minute(api_client, agent_key, locmem_cache):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        api_client.get(ME_URL, **agent_key)
    agent_key.api_key.refresh_from_db()
    assert agent_key.api_key.last_used_at == start
    with time_machine.travel(start + timedelta(seconds=30), tick=False):
        api_client.get(ME_URL, **agent_key)
    agent_key.api_key.refresh_from_db()
    assert agent_key.api_key.last_used_at == start
    with time_machine.travel(start + timedelta(seconds=61), tick=False):
        api_client.get(ME_URL, **agent_key)
    agent_key.api_key.refresh_from_db()
    assert agent_key.api_key.last_used_at == start + timedelta(seconds=61)


def test_key_is_stored_only_as_prefix_and_hash(agent_key):
    secret = agent_key.raw_key.split(".", 1)[1]
    for model in apps.get_models():
        for row in model.objects.all().values_list():
            text = repr(row)
            assert agent_key.raw_key not in text and secret not in text, model


def test_key_never_appears_in_logs_or_audit_events(api_client, caplog, capsys, audit_events):
    with caplog.at_level(logging.DEBUG):
        call_command("create_agent", "log-agent")
        raw_key = capsys.readouterr().out.strip().splitlines()[-1]
        header = {"HTTP_AUTHORIZATION": f"Api-Key {raw_key}"}
        api_client.get(ME_URL, **header)
        api_client.get(ME_URL, HTTP_AUTHORIZATION=f"Api-Key {raw_key}x")
        api_key_revoke(api_key=ApiKey.objects.get(user__username="log-agent"), actor=None)
        api_client.get(ME_URL, **header)
    secret = raw_key.split(".", 1)[1]
    logged = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    assert secret not in logged
    assert audit_events.of("api_key.created") and audit_events.of("api_key.revoked")
    assert secret not in repr(list(audit_events))


def test_key_creation_is_audited_with_the_prefix_only(user_factory, audit_events):
    agent = user_factory(role="agent", password=None)
    api_key, raw_key = api_key_create(user=agent, name="ci")
    (event,) = audit_events.of("api_key.created")
    assert event["details"]["prefix"] == api_key.prefix
    assert raw_key.split(".", 1)[1] not in repr(event)


def test_keys_cannot_be_issued_already_expired_or_to_inactive_users(user_factory):
    from agentplatform.errors import ValidationFailed

    agent = user_factory(role="agent", password=None)
    with pytest.raises(ValidationFailed):
        api_key_create(user=agent, expires_at=timezone.now() - timedelta(seconds=1))
    agent.is_active = False
    agent.save()
    with pytest.raises(ValidationFailed):
        api_key_create(user=agent)


def test_keys_still_authenticate_from_the_database_when_the_cache_is_down(api_client, agent_key, accounts_cache_down):
    assert api_client.get(ME_URL, **agent_key).status_code == 200


def test_revocation_holds_when_the_cache_is_down(api_client, agent_key, accounts_cache_down):
    api_key_revoke(api_key=agent_key.api_key, actor=None)
    assert api_client.get(ME_URL, **agent_key).status_code == 401
