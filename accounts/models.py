"""Identities: staff people and agent service accounts share one user table."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    OPERATOR = "operator", "Operator (runs experiments)"
    ANALYST = "analyst", "Analyst (reads and exports)"
    AGENT = "agent", "Agent (service identity)"


class User(AbstractUser):
    """The platform's user: a person (admin, operator, analyst) or an agent's service identity."""

    role = models.CharField(max_length=16, choices=Role.choices, default=Role.ANALYST, db_index=True)

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"

    @property
    def is_agent(self) -> bool:
        return self.role == Role.AGENT
