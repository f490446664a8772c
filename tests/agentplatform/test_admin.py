import datetime as dt

import pytest

from agentplatform.models import BreakerTransition


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("root-admin", "root@example.com", "a-long-password-1")


@pytest.mark.django_db
def test_breaker_transitions_are_listed_read_only_in_the_admin(client, superuser):
    BreakerTransition.objects.create(
        breaker="search",
        from_state="closed",
        to_state="open",
        at=dt.datetime(2026, 3, 2, 12, tzinfo=dt.UTC),
        last_error="ConnectError: refused",
        storage="shared",
    )
    client.force_login(superuser)
    listing = client.get("/admin/agentplatform/breakertransition/")
    assert listing.status_code == 200
    assert "ConnectError: refused" in listing.content.decode()
    assert client.get("/admin/agentplatform/breakertransition/add/").status_code == 403
