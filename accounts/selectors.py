"""Reads for identities."""

from __future__ import annotations

from accounts.models import User


def user_identity(*, user: User) -> dict:
    """What ``auth/me`` shows: who the caller is and every permission it holds (sorted)."""
    return {
        "id": user.pk,
        "username": user.username,
        "role": user.role,
        "permissions": sorted(user.get_all_permissions()),
    }
