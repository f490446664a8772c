"""JWT life cycle: obtain, rotation, reuse, logout, forged tokens, password change and deactivation."""

from __future__ import annotations

import uuid
from datetime import timedelta

import jwt
import pytest
import time_machine
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts.models import RevokedAccessToken
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.django_db

TOKEN_URL = "/api/v1/auth/token"
REFRESH_URL = "/api/v1/auth/token/refresh"
LOGOUT_URL = "/api/v1/auth/logout"
ME_URL = "/api/v1/auth/me"


def obtain(client: APIClient, username: str, password: str = TEST_PASSWORD):
    return client.post(TOKEN_URL, {"username": username, "password": password}, format="json")


def bearer(access: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {access}"}


@pytest.fixture
def pair(api_client, person) -> dict[str, str]:
    response = obtain(api_client, person.username)
    assert response.status_code == 200, response.content
    return response.json()


def forge(claims: dict, *, key: str | None = None, algorithm: str = "HS256", headers: dict | None = None) -> str:
    """A token built with PyJWT directly, as an attacker (or a bug) would."""
    now = timezone.now()
    payload = {
        "token_type": "access",
        "exp": int((now + timedelta(minutes=5)).timestamp()),
        "iat": int(now.timestamp()),
        "jti": uuid.uuid4().hex,
        "iss": settings.SIMPLE_JWT["ISSUER"],
        **claims,
    }
    return jwt.encode(payload, key if key is not None else settings.JWT_SIGNING_KEY, algorithm, headers=headers)


def test_token_returns_a_pair_that_authenticates_me(api_client, person, pair):
    response = api_client.get(ME_URL, **bearer(pair["access"]))
    assert response.status_code == 200
    assert response.json() == {
        "id": person.pk,
        "username": person.username,
        "role": "analyst",
        "permissions": sorted(person.get_all_permissions()),
    }
    assert "accounts.view_user" in response.json()["permissions"]


def test_token_login_is_audited_durably(api_client, person, audit_events):
    obtain(api_client, person.username)
    (event,) = audit_events.of("auth.logged_in")
    assert event["actor"] == person and event["durable"] is True


def test_wrong_password_is_a_401_envelope_and_audited_as_failure(api_client, person, audit_events):
    response = obtain(api_client, person.username, "not-the-password")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
    (event,) = audit_events.of("auth.login_failed")
    assert event["success"] is False and event["durable"] is True
    assert "not-the-password" not in repr(event)


def test_inactive_user_cannot_obtain_tokens(api_client, user_factory):
    user = user_factory(role="operator", is_active=False)
    assert obtain(api_client, user.username).status_code == 401


def test_signing_uses_the_dedicated_key_not_secret_key(pair):
    jwt.decode(pair["access"], settings.JWT_SIGNING_KEY, algorithms=["HS256"], issuer=settings.SIMPLE_JWT["ISSUER"])
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(pair["access"], settings.SECRET_KEY, algorithms=["HS256"])


def test_refresh_rotates_and_blacklists_the_old_refresh_token(api_client, pair):
    response = api_client.post(REFRESH_URL, {"refresh": pair["refresh"]}, format="json")
    assert response.status_code == 200
    rotated = response.json()
    assert set(rotated) == {"access", "refresh"} and rotated["refresh"] != pair["refresh"]
    old_jti = jwt.decode(pair["refresh"], options={"verify_signature": False})["jti"]
    assert BlacklistedToken.objects.filter(token__jti=old_jti).exists()
    assert api_client.get(ME_URL, **bearer(rotated["access"])).status_code == 200


def test_reusing_a_rotated_refresh_token_is_refused_and_audited_as_suspicious(api_client, pair, audit_events):
    api_client.post(REFRESH_URL, {"refresh": pair["refresh"]}, format="json")
    response = api_client.post(REFRESH_URL, {"refresh": pair["refresh"]}, format="json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_reused"
    (event,) = audit_events.of("auth.refresh_reuse_detected")
    assert event["severity"] == "warning" and event["success"] is False and event["durable"] is True
    assert event["details"]["everything_revoked"] is True


def test_reuse_revokes_every_token_of_the_user_including_the_rotated_pair(api_client, person, pair):
    rotated = api_client.post(REFRESH_URL, {"refresh": pair["refresh"]}, format="json").json()
    version = person.token_version
    assert api_client.post(REFRESH_URL, {"refresh": pair["refresh"]}, format="json").status_code == 401
    person.refresh_from_db()
    assert person.token_version == version + 1
    assert api_client.get(ME_URL, **bearer(rotated["access"])).json()["error"]["code"] == "authentication_failed"
    response = api_client.post(REFRESH_URL, {"refresh": rotated["refresh"]}, format="json")
    assert response.status_code == 401 and response.json()["error"]["code"] == "token_revoked"
    # A fresh login still works: the user is logged out everywhere, not locked out.
    fresh = obtain(api_client, person.username).json()
    assert api_client.get(ME_URL, **bearer(fresh["access"])).status_code == 200


def test_replaying_a_reused_token_again_does_not_revoke_the_fresh_login(api_client, person, pair, audit_events):
    api_client.post(REFRESH_URL, {"refresh": pair["refresh"]}, format="json")
    api_client.post(REFRESH_URL, {"refresh": pair["refresh"]}, format="json")  # reuse: everything revoked
    fresh = obtain(api_client, person.username).json()
    response = api_client.post(REFRESH_URL, {"refresh": pair["refresh"]}, format="json")
    assert response.json()["error"]["code"] == "token_reused"
    assert api_client.get(ME_URL, **bearer(fresh["access"])).status_code == 200
    assert [e["details"]["everything_revoked"] for e in audit_events.of("auth.refresh_reuse_detected")] == [True, False]


def test_refresh_tokens_are_not_stored_in_clear(pair):
    assert not OutstandingToken.objects.exclude(token="").exists()


def test_logout_kills_the_access_token_immediately(api_client, pair, audit_events):
    response = api_client.post(LOGOUT_URL, {"refresh": pair["refresh"]}, format="json", **bearer(pair["access"]))
    assert response.status_code == 204
    after = api_client.get(ME_URL, **bearer(pair["access"]))
    assert after.status_code == 401
    assert after.json()["error"]["code"] == "authentication_failed"
    assert api_client.post(REFRESH_URL, {"refresh": pair["refresh"]}, format="json").status_code == 401
    assert audit_events.actions().count("auth.logged_out") == 1


def test_logout_survives_a_cache_restart(api_client, pair):
    api_client.post(LOGOUT_URL, {"refresh": pair["refresh"]}, format="json", **bearer(pair["access"]))
    cache.clear()  # what a Redis restart without persistence looks like
    assert api_client.get(ME_URL, **bearer(pair["access"])).status_code == 401


def test_an_access_token_costs_no_query_once_cached(api_client, pair, django_assert_num_queries):
    api_client.get(ME_URL, **bearer(pair["access"]))
    # The denylist answer and the user's snapshot (with its permissions, for /me) come from the cache.
    with django_assert_num_queries(0):
        assert api_client.get(ME_URL, **bearer(pair["access"])).status_code == 200


def test_a_group_change_reaches_the_tokens_permissions_at_once(api_client, person, pair):
    from django.contrib.auth.models import Group, Permission

    assert "accounts.add_user" not in api_client.get(ME_URL, **bearer(pair["access"])).json()["permissions"]
    group = Group.objects.create(name="user-admins")
    group.permissions.add(Permission.objects.get(codename="add_user"))
    person.groups.add(group)
    assert "accounts.add_user" in api_client.get(ME_URL, **bearer(pair["access"])).json()["permissions"]


def test_a_password_change_refuses_a_cached_token_on_its_next_request(api_client, person, pair):
    assert api_client.get(ME_URL, **bearer(pair["access"])).status_code == 200  # snapshot cached
    person.set_password("a-new-secret-passphrase-7")
    person.save()
    response = api_client.get(ME_URL, **bearer(pair["access"]))
    assert response.status_code == 401 and response.json()["error"]["code"] == "authentication_failed"


def test_a_stale_snapshot_cannot_be_cached_back_after_a_revocation(
    api_client, person, pair, django_capture_on_commit_callbacks
):
    from accounts.services import user_snapshot_cache_key, user_snapshot_of
    from accounts.tokens import user_tokens_revoke

    stale = user_snapshot_of(person)  # a request read the row before the bump...
    with django_capture_on_commit_callbacks(execute=True):
        user_tokens_revoke(user=person)
    cache.add(user_snapshot_cache_key(person.pk), stale, 60)  # ...and caches it after: refused by add
    assert api_client.get(ME_URL, **bearer(pair["access"])).status_code == 401


def test_logout_with_another_users_refresh_token_is_forbidden(api_client, pair, user_factory):
    other = user_factory(role="operator")
    other_pair = obtain(api_client, other.username).json()
    response = api_client.post(LOGOUT_URL, {"refresh": other_pair["refresh"]}, format="json", **bearer(pair["access"]))
    assert response.status_code == 403
    assert api_client.post(REFRESH_URL, {"refresh": other_pair["refresh"]}, format="json").status_code == 200


def test_logout_requires_authentication(api_client, pair):
    response = api_client.post(LOGOUT_URL, {"refresh": pair["refresh"]}, format="json")
    assert response.status_code == 401


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(lambda user: forge({"user_id": str(user.pk), "ver": 0}, key="", algorithm="none"), id="alg-none"),
        pytest.param(lambda user: forge({"user_id": str(user.pk), "ver": 0}, algorithm="HS512"), id="other-algorithm"),
        pytest.param(lambda user: forge({"user_id": str(user.pk), "ver": 0}, key="x" * 64), id="bad-signature"),
        pytest.param(
            lambda user: forge({"user_id": str(user.pk), "ver": 0, "exp": int(timezone.now().timestamp()) - 1}),
            id="expired",
        ),
        pytest.param(lambda user: forge({"user_id": str(user.pk), "ver": 0, "token_type": "refresh"}), id="wrong-type"),
        pytest.param(lambda user: forge({"user_id": str(user.pk), "ver": 0, "iss": "someone-else"}), id="wrong-issuer"),
        pytest.param(lambda user: forge({"user_id": str(user.pk), "ver": 1}), id="stale-version"),
        pytest.param(lambda user: forge({"user_id": str(user.pk)}), id="no-version"),
        pytest.param(lambda user: "not.a.jwt", id="garbage"),
    ],
)
def test_forged_or_invalid_access_tokens_get_a_401_envelope(api_client, person, make_token):
    response = api_client.get(ME_URL, **bearer(make_token(person)))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_a_correctly_forged_token_is_accepted_which_proves_the_forgeries_differ_in_one_thing(api_client, person):
    assert api_client.get(ME_URL, **bearer(forge({"user_id": str(person.pk), "ver": 0}))).status_code == 200


def test_access_token_is_refused_as_a_refresh_token(api_client, pair):
    response = api_client.post(REFRESH_URL, {"refresh": pair["access"]}, format="json")
    assert response.status_code == 401


def test_expired_refresh_token_is_refused(api_client, pair):
    with time_machine.travel(timezone.now() + settings.SIMPLE_JWT["REFRESH_TOKEN_LIFETIME"] + timedelta(seconds=5)):
        response = api_client.post(REFRESH_URL, {"refresh": pair["refresh"]}, format="json")
    assert response.status_code == 401


def test_access_token_expires_after_its_lifetime(api_client, pair):
    with time_machine.travel(timezone.now() + settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"] + timedelta(seconds=5)):
        assert api_client.get(ME_URL, **bearer(pair["access"])).status_code == 401


def test_a_token_remembered_by_this_process_still_expires_on_time(api_client, pair):
    expires = timezone.now() + settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"]
    with time_machine.travel(expires - timedelta(seconds=10)):
        assert api_client.get(ME_URL, **bearer(pair["access"])).status_code == 200  # decoded and remembered
    with time_machine.travel(expires + timedelta(seconds=5)):  # well within the memo's own lifetime
        assert api_client.get(ME_URL, **bearer(pair["access"])).status_code == 401


def test_password_change_invalidates_existing_tokens(api_client, person, pair):
    person.set_password("a-brand-new-password-77")
    person.save()
    assert api_client.get(ME_URL, **bearer(pair["access"])).status_code == 401
    assert api_client.post(REFRESH_URL, {"refresh": pair["refresh"]}, format="json").status_code == 401
    assert obtain(api_client, person.username, "a-brand-new-password-77").status_code == 200


def test_deactivation_invalidates_tokens_and_reactivation_does_not_revive_them(api_client, person, pair):
    person.is_active = False
    person.save()
    assert api_client.get(ME_URL, **bearer(pair["access"])).status_code == 401
    person.refresh_from_db()
    person.is_active = True
    person.save()
    assert api_client.get(ME_URL, **bearer(pair["access"])).status_code == 401
    assert api_client.post(REFRESH_URL, {"refresh": pair["refresh"]}, format="json").status_code == 401


def test_saving_a_user_without_changes_keeps_their_tokens(api_client, person, pair):
    person.first_name = "Ada"
    person.save()
    assert api_client.get(ME_URL, **bearer(pair["access"])).status_code == 200


def test_revoked_access_rows_expire_with_the_token(api_client, pair):
    api_client.post(LOGOUT_URL, {"refresh": pair["refresh"]}, format="json", **bearer(pair["access"]))
    row = RevokedAccessToken.objects.get()
    exp = jwt.decode(pair["access"], options={"verify_signature": False})["exp"]
    assert int(row.expires_at.timestamp()) == exp


def test_logout_holds_when_the_cache_is_down(api_client, pair, request):
    api_client.post(LOGOUT_URL, {"refresh": pair["refresh"]}, format="json", **bearer(pair["access"]))
    request.getfixturevalue("accounts_cache_down")
    assert api_client.get(ME_URL, **bearer(pair["access"])).status_code == 401


def test_a_malformed_bearer_header_is_a_plain_sentence(api_client):
    response = api_client.get("/api/v1/auth/me", HTTP_AUTHORIZATION="Bearer abc def")
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "Authorization header must contain two space-delimited values"
