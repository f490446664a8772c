"""The real URLs plus one probe view guarded by a permission some roles lack (for 403 tests)."""

from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from agentplatform.permissions import Requires
from agentplatform.urls import urlpatterns as platform_urlpatterns


class ProbeView(APIView):
    permission_classes = [Requires("accounts.view_user")]
    throttle_scope = "auth.me"

    def get(self, request):
        return Response({"ok": True})


urlpatterns = [path("api/v1/test/probe", ProbeView.as_view()), *platform_urlpatterns]
