"""Each process remembers verified credentials and forgets them on a message of the memo channel."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from accounts import authentication
from accounts.cache import MemoInvalidations, memo_invalidations
from accounts.tokens import REVOKED, AccessToken, denylist_cache_key, token_pair_for
from agentplatform import compat

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(compat.redis_client(cache) is None, reason="the channel is Redis pub/sub"),
]

ME_URL = "/api/v1/auth/me"


@pytest.fixture
def shared_cache_reads(monkeypatch) -> list[tuple]:
    """Every get_many Bearer authentication sends to the shared cache."""
    reads: list[tuple] = []
    real = authentication.cache_get_many

    def counting(*keys):
        reads.append(keys)
        return real(*keys)

    monkeypatch.setattr(authentication, "cache_get_many", counting)
    return reads


@pytest.fixture
def bearer(user_factory):
    access = token_pair_for(user_factory(role="analyst"))["access"]
    return {"HTTP_AUTHORIZATION": f"Bearer {access}", "access": access}


def get_me(api_client, bearer) -> int:
    return api_client.get(ME_URL, HTTP_AUTHORIZATION=bearer["HTTP_AUTHORIZATION"]).status_code


def publish_from_another_process(key: str) -> None:
    """What another process's publish does: a message on the channel, nothing done here."""
    client = compat.redis_client(cache)
    client.publish(MemoInvalidations.channel(client), key)


def test_a_bearer_token_is_checked_against_the_shared_cache_once_per_process(api_client, bearer, shared_cache_reads):
    for _ in range(3):
        assert get_me(api_client, bearer) == 200
    assert len(shared_cache_reads) == 1


def test_a_logout_in_another_process_is_refused_here_on_the_next_request(api_client, bearer, shared_cache_reads):
    assert get_me(api_client, bearer) == 200  # remembered here
    jti = str(AccessToken(bearer["access"])["jti"])
    cache.set(denylist_cache_key(jti), REVOKED, 300)  # the other process's logout...
    publish_from_another_process(f"t:{jti}")  # ...and its message
    assert get_me(api_client, bearer) == 401
    assert len(shared_cache_reads) == 2


def test_a_message_for_another_user_leaves_the_memory_alone(api_client, bearer, shared_cache_reads):
    assert get_me(api_client, bearer) == 200
    publish_from_another_process("u:999999")
    assert get_me(api_client, bearer) == 200
    assert len(shared_cache_reads) == 1


def test_a_subscription_that_reconnected_forgets_everything_it_remembered(api_client, bearer, shared_cache_reads):
    assert get_me(api_client, bearer) == 200
    memo_invalidations.drain()
    memo_invalidations._pubsub.connection.disconnect()  # what a dropped connection leaves behind
    assert get_me(api_client, bearer) == 200  # redis-py reconnected: messages may have been missed
    assert len(shared_cache_reads) == 2


def test_an_api_key_revoked_in_another_process_is_refused_here_on_the_next_request(api_client, agent_key):
    from accounts.models import ApiKey
    from accounts.services import api_key_cache_key

    assert api_client.get(ME_URL, **agent_key).status_code == 200  # remembered here
    # What api_key_revoke does in another process: the row, the tombstone, and the message.
    ApiKey.objects.filter(pk=agent_key.api_key.pk).update(revoked_at="2026-01-01T00:00:00Z")
    cache.set(api_key_cache_key(agent_key.api_key.prefix), {}, 300)
    publish_from_another_process(f"k:{agent_key.api_key.prefix}")
    assert api_client.get(ME_URL, **agent_key).status_code == 401
