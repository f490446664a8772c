"""Declared permissions for API views: ``permission_classes = [Requires("app.codename")]``."""

from __future__ import annotations

from django.conf import settings
from rest_framework.permissions import BasePermission

from agentplatform import compat
from agentplatform.cached_settings import CachedSetting


class Requires(BasePermission):
    """Allows an authenticated caller holding every named Django permission.

    Used as ``permission_classes = [Requires("experiments.change_experiment")]``. DRF instantiates
    each entry of ``permission_classes``; an instance of this class returns itself when called,
    so the declaration reads like a class and carries its arguments.
    """

    def __init__(self, *perms: str, message: str | None = None):
        self.perms = perms
        if message:
            self.message = message

    def __call__(self) -> Requires:
        return self

    def __repr__(self) -> str:
        return f"Requires({', '.join(map(repr, self.perms))})"

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        granted = compat.cached_permissions(user)
        if granted is not None and _model_backend_answers():
            # What ModelBackend would answer from the permissions it (or the API-key snapshot) put in
            # the user's cache, without Django instantiating every backend for every permission.
            return user.is_active and (user.is_superuser or all(perm in granted for perm in self.perms))
        return user.has_perms(self.perms)


# Backends whose permission answer, for a user with ModelBackend's permission cache, is "active, and superuser or
# listed there": ModelBackend's own, and axes's standalone backend, which answers no permissions.
_CACHE_ANSWERING_BACKENDS = frozenset(
    {"django.contrib.auth.backends.ModelBackend", "axes.backends.AxesStandaloneBackend"}
)


_model_backend_answers = CachedSetting(
    ["AUTHENTICATION_BACKENDS"], lambda: set(settings.AUTHENTICATION_BACKENDS) <= _CACHE_ANSWERING_BACKENDS
)
