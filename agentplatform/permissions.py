"""Declared permissions for API views: ``permission_classes = [Requires("app.codename")]``.

``Requires`` is DRF's ``DjangoModelPermissions``, with two additions: GET, HEAD and OPTIONS need
``view_<model>`` (DRF lets any authenticated caller read), and a view may name its permissions
outright instead of a model, for the platform's custom ones (``experiments.resolve_prompt``):

- ``Requires("app.codename", ...)``: those permissions, whatever the method;
- ``Requires(model=Experiment)``: DRF's map by method (GET/HEAD ``view``, POST ``add``, PUT/PATCH
  ``change``, DELETE ``delete``; a method outside the map is a 405);
- ``Requires()``: any authenticated caller.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import Model
from rest_framework.permissions import DjangoModelPermissions

from agentplatform import compat
from agentplatform.cached_settings import CachedSetting

_VIEW = ["%(app_label)s.view_%(model_name)s"]


class Requires(DjangoModelPermissions):
    """Allows an authenticated caller holding every permission the declaration names for the method.

    Used as ``permission_classes = [Requires("experiments.change_experiment")]``. DRF instantiates
    each entry of ``permission_classes``; an instance of this class returns itself when called,
    so the declaration reads like a class and carries its arguments.
    """

    perms_map = {**DjangoModelPermissions.perms_map, "GET": _VIEW, "HEAD": _VIEW, "OPTIONS": _VIEW}

    def __init__(self, *perms: str, model: type[Model] | None = None, message: str | None = None):
        if perms and model is not None:
            raise TypeError("Requires takes permission names or a model, not both.")
        self.perms = perms
        self.model = model
        if message:
            self.message = message

    def __call__(self) -> Requires:
        return self

    def __repr__(self) -> str:
        if self.model is not None:
            return f"Requires(model={self.model._meta.label})"
        return f"Requires({', '.join(map(repr, self.perms))})"

    def get_required_permissions(self, method: str, model_cls: type[Model] | None) -> list[str]:
        if model_cls is None:
            return list(self.perms)
        return super().get_required_permissions(method, model_cls)

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        # The model is declared here rather than read from ``view.queryset``: these views are
        # plain APIViews over services, with no queryset to inspect.
        perms = self.perms if self.model is None else self.get_required_permissions(request.method, self.model)
        granted = compat.cached_permissions(user)
        if granted is not None and _model_backend_answers():
            # What ModelBackend would answer from the permissions it (or the API-key snapshot) put in
            # the user's cache, without Django instantiating every backend for every permission.
            return user.is_active and (user.is_superuser or all(perm in granted for perm in perms))
        return user.has_perms(perms)

    def has_object_permission(self, request, view, obj) -> bool:
        return True  # object-level rules, where there are any, live in the services


# Backends whose permission answer, for a user with ModelBackend's permission cache, is "active, and
# superuser or listed there": ModelBackend's own, and the login lock's backend, which answers no permissions.
_CACHE_ANSWERING_BACKENDS = frozenset(
    {"django.contrib.auth.backends.ModelBackend", "accounts.lockout.LoginLockBackend"}
)


_model_backend_answers = CachedSetting(
    ["AUTHENTICATION_BACKENDS"], lambda: set(settings.AUTHENTICATION_BACKENDS) <= _CACHE_ANSWERING_BACKENDS
)
