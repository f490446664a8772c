"""Tiny views for the cross-cutting tests, mounted with ``override_settings(ROOT_URLCONF=...)``."""

from __future__ import annotations

from types import SimpleNamespace

from django.urls import path
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import User


class TestKeyAuthentication(BaseAuthentication):
    """``Authorization: Test-Key <id>`` authenticates as an agent whose ``request.auth`` has that id."""

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header.startswith("Test-Key "):
            return None
        key_id = int(header.removeprefix("Test-Key "))
        return User(pk=1000 + key_id, username=f"agent-{key_id}"), SimpleNamespace(id=key_id)

    def authenticate_header(self, request):
        return "Test-Key"


class UnlimitedView(APIView):
    """No ``ratelimit_group`` attribute: not limited."""

    authentication_classes = [TestKeyAuthentication]
    permission_classes = [AllowAny]

    def get(self, request):
        return Response({"ok": True})


class TinyLimitView(UnlimitedView):
    ratelimit_group = "test.tiny"


class TwentyLimitView(TinyLimitView):
    ratelimit_group = "test.twenty"


class LoginLikeView(TinyLimitView):
    ratelimit_group = "auth.test"


class ProtectedView(TinyLimitView):
    permission_classes = [IsAuthenticated]


urlpatterns = [
    path("api/v1/test/tiny", TinyLimitView.as_view()),
    path("api/v1/test/twenty", TwentyLimitView.as_view()),
    path("api/v1/test/login", LoginLikeView.as_view()),
    path("api/v1/test/unlimited", UnlimitedView.as_view()),
    path("api/v1/test/protected", ProtectedView.as_view()),
]

handler400 = "agentplatform.errors.handler400"
handler403 = "agentplatform.errors.handler403"
handler404 = "agentplatform.errors.handler404"
handler500 = "agentplatform.errors.handler500"
