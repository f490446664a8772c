"""The library internals ``agentplatform.compat`` relies on are still there and still mean the same.

Each test names the private attribute it guards: when a Django, DRF or redis-py upgrade moves one,
the failure says which helper to rewrite.
"""

from __future__ import annotations

import io

import pytest
from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.core.cache.backends.locmem import LocMemCache
from django.db import connection, transaction
from django.test import RequestFactory

from accounts.models import User
from agentplatform import compat

needs_redis = pytest.mark.skipif(
    not settings.CACHES["default"]["BACKEND"].endswith("agentplatform.cache.RedisCache"), reason="needs Redis"
)


def test_httprequest_stream_is_what_request_read_consumes():
    request = RequestFactory().post("/x", data=b"original", content_type="application/octet-stream")
    assert compat.request_body_stream(request).read(8) == b"original"  # HttpRequest._stream
    compat.replace_request_body_stream(request, io.BytesIO(b"replaced\nline"))
    assert request.readline() == b"replaced\n"
    assert request.read() == b"line"


def test_httprequest_body_comes_from_the_replaced_stream():
    request = RequestFactory().post("/x", data=b"{}", content_type="application/json")
    compat.replace_request_body_stream(request, io.BytesIO(b'{"a": 1}'))
    request.META["CONTENT_LENGTH"] = "8"
    assert request.body == b'{"a": 1}'


@needs_redis
def test_rediscache_client_talks_to_the_cache_s_own_server():
    full_key = cache.make_and_validate_key("compat-probe")
    client = compat.redis_client(cache, full_key)  # RedisCache._cache.get_client
    client.set(full_key, 41)
    assert client.incr(full_key) == 42
    assert cache.get("compat-probe") == 42  # Django stores ints unpickled, as the raw client does


@needs_redis
def test_the_pooled_client_is_reused_across_calls():
    first = compat.redis_client(cache)
    assert first is compat.redis_client(cache)
    assert isinstance(cache._cache, compat.PooledClientRedisCacheClient)  # RedisCache._class


def test_a_cache_without_a_redis_client_has_none():
    assert compat.redis_client(LocMemCache("compat", {})) is None


@pytest.mark.django_db
def test_modelbackend_caches_permissions_where_compat_reads_them():
    user = User.objects.create_user("compat-perms", password="x" * 12)
    permission = Permission.objects.get(codename="view_user")
    user.user_permissions.add(permission)
    assert compat.cached_permissions(user) is None
    answered = ModelBackend().get_all_permissions(user)
    assert "accounts.view_user" in answered
    assert compat.cached_permissions(user) == answered  # ModelBackend._perm_cache


@pytest.mark.django_db
def test_primed_permissions_answer_has_perm_without_a_query(django_assert_num_queries):
    user = User.objects.create_user("compat-primed", password="x" * 12)
    user = User.objects.get(pk=user.pk)
    compat.prime_permissions(user, ["experiments.view_experiment"])
    with django_assert_num_queries(0):
        assert user.has_perm("experiments.view_experiment")
        assert not user.has_perm("experiments.change_experiment")


@pytest.mark.django_db
def test_atomic_blocks_of_a_test_case_are_not_the_application_s():
    assert connection.in_atomic_block  # pytest-django's wrapping transaction (Atomic._from_testcase)
    assert not compat.in_application_atomic(connection)
    with transaction.atomic():
        assert compat.in_application_atomic(connection)
    assert not compat.in_application_atomic(connection)


@pytest.mark.django_db
def test_set_password_is_visible_until_the_save_that_stores_it():
    user = User.objects.create_user("compat-password", password="x" * 12)
    assert not compat.password_set_unsaved(user)
    user.set_password("y" * 12)  # AbstractBaseUser._password
    assert compat.password_set_unsaved(user)
    user.save()
    assert not compat.password_set_unsaved(user)
    user.set_password("z" * 12)
    compat.forget_unsaved_password(user)
    assert not compat.password_set_unsaved(user)
