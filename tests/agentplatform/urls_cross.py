"""Tiny views for the cross-cutting tests, mounted with ``override_settings(ROOT_URLCONF=...)``."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from django.http import Http404, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import AllowAny, BasePermission, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import User
from agentplatform.errors import RateLimited

logger = logging.getLogger("tests.cross")


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
    """No ``throttle_scope`` attribute: not limited."""

    authentication_classes = [TestKeyAuthentication]
    permission_classes = [AllowAny]

    def get(self, request):
        return Response({"ok": True})


class TinyLimitView(UnlimitedView):
    throttle_scope = "test.tiny"


class TwentyLimitView(TinyLimitView):
    throttle_scope = "test.twenty"


class LoginLikeView(TinyLimitView):
    throttle_scope = "auth.test"


class ProtectedView(TinyLimitView):
    permission_classes = [IsAuthenticated]


class EchoView(UnlimitedView):
    """Parses the JSON body (DRF's JSONParser) and says how many keys it had."""

    def post(self, request):
        return Response({"keys": len(request.data)})


class BatchEchoView(EchoView):
    max_body_bytes = 8192


class GreedyEchoView(EchoView):
    max_body_bytes = 50 * 1024 * 1024  # above the 10 MiB ceiling: capped


class DeniedPermission(BasePermission):
    def has_permission(self, request, view):
        return False


class ForbiddenView(UnlimitedView):
    permission_classes = [IsAuthenticated, DeniedPermission]


class MissingThingView(UnlimitedView):
    def get(self, request):
        raise Http404("no such thing")


class CrashView(UnlimitedView):
    def get(self, request):
        logger.info("about to crash")
        raise RuntimeError("database password is hunter2")


class FailingMiddleware:
    """Raises from middleware when asked to by the ``X-Fail`` header (``crash`` or ``limit``)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        mode = request.headers.get("X-Fail")
        if mode == "crash":
            raise RuntimeError("middleware internals")
        if mode == "limit":
            raise RateLimited(retry_after=17)
        return self.get_response(request)


def plain_view(request):
    return HttpResponse("ok")


plain_view.max_body_bytes = 4096


urlpatterns = [
    path("api/v1/test/tiny", TinyLimitView.as_view()),
    path("api/v1/test/twenty", TwentyLimitView.as_view()),
    path("api/v1/test/login", LoginLikeView.as_view()),
    path("api/v1/test/unlimited", UnlimitedView.as_view()),
    path("api/v1/test/protected", ProtectedView.as_view()),
    path("api/v1/test/echo", EchoView.as_view()),
    path("api/v1/test/batch-echo", BatchEchoView.as_view()),
    path("api/v1/test/greedy-echo", GreedyEchoView.as_view()),
    path("api/v1/test/forbidden", ForbiddenView.as_view()),
    path("api/v1/test/missing", MissingThingView.as_view()),
    path("api/v1/test/crash", CrashView.as_view()),
    path("api/v1/test/plain", csrf_exempt(plain_view)),
]

handler400 = "agentplatform.errors.handler400"
handler403 = "accounts.handlers.handler403"  # budgets and audits, then agentplatform.errors.handler403
handler404 = "agentplatform.errors.handler404"
handler500 = "agentplatform.errors.handler500"
