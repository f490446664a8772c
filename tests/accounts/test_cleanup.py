"""token_cleanup: expired revocation rows go, in batches; live ones stay."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts.models import RevokedAccessToken
from accounts.tokens import token_cleanup

pytestmark = pytest.mark.django_db


def make_rows(user, *, expired: int, live: int) -> None:
    now = timezone.now()
    for number in range(expired + live):
        expires_at = now - timedelta(hours=1) if number < expired else now + timedelta(hours=1)
        outstanding = OutstandingToken.objects.create(
            user=user, jti=f"r{number}", token="", created_at=now, expires_at=expires_at
        )
        BlacklistedToken.objects.create(token=outstanding)
        RevokedAccessToken.objects.create(jti=f"a{number}", user=user, expires_at=expires_at)


def test_cleanup_removes_expired_rows_in_batches_and_keeps_live_ones(person):
    make_rows(person, expired=5, live=2)
    deleted = token_cleanup(batch_size=2)
    # 5 outstanding + their 5 blacklist rows + 5 denylisted access tokens
    assert deleted == 15
    assert OutstandingToken.objects.count() == 2
    assert BlacklistedToken.objects.count() == 2
    assert RevokedAccessToken.objects.count() == 2


def test_cleanup_keeps_rows_that_expired_within_the_margin(person):
    now = timezone.now()
    RevokedAccessToken.objects.create(jti="fresh", user=person, expires_at=now - timedelta(seconds=10))
    assert token_cleanup(now=now) == 0


def test_cleanup_job_runs_the_service(person):
    from agentplatform.scheduling.runner import JobRequest, job_run

    make_rows(person, expired=1, live=0)
    assert job_run(request=JobRequest(job="token_cleanup")).rows_affected == 3
