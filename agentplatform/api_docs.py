"""The OpenAPI schema (``/api/schema/``) and its Swagger UI (``/api/docs/``).

Public outside production; in production they need a login (a staff session, a JWT or an API key
for the schema; a session for the page, which redirects to the admin login) unless
``API_DOCS_PUBLIC=1``. Read per request, so the setting needs no URLconf reload.

The page is drf-spectacular's split view: its init script is a separate same-origin request, so
the page runs without inline script. Swagger UI's own template still carries an inline ``<style>``
block, so this page, and only this page, may apply inline style elements.
"""

from __future__ import annotations

from csp.constants import SELF, UNSAFE_INLINE
from csp.decorators import csp_update
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.urls import reverse
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import BasePermission

# Added to the site policy (settings.CONTENT_SECURITY_POLICY) for the Swagger UI page only.
SWAGGER_UI_POLICY_UPDATE = {"style-src-elem": [SELF, UNSAFE_INLINE]}


class ApiDocsPermission(BasePermission):
    """Anyone when API_DOCS_PUBLIC, else any authenticated caller."""

    def has_permission(self, request, view) -> bool:
        return settings.API_DOCS_PUBLIC or bool(request.user and request.user.is_authenticated)


schema_view = SpectacularAPIView.as_view(permission_classes=[ApiDocsPermission])
_swagger_view = csp_update(SWAGGER_UI_POLICY_UPDATE)(
    SpectacularSwaggerSplitView.as_view(url_name="schema", permission_classes=[ApiDocsPermission])
)


def docs_view(request):
    """Swagger UI; an anonymous browser is sent to the admin login when the docs are not public."""
    if not settings.API_DOCS_PUBLIC and not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path(), login_url=reverse("admin:login"))
    return _swagger_view(request)
