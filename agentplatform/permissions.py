"""Declared permissions for API views: ``permission_classes = [Requires("app.codename")]``."""

from __future__ import annotations

from rest_framework.permissions import BasePermission


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
        return user.has_perms(self.perms)
