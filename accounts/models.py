"""Identities: staff people and agent service accounts share one user table."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.hashers import check_password
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone

from agentplatform import compat


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    OPERATOR = "operator", "Operator (runs experiments)"
    ANALYST = "analyst", "Analyst (reads and exports)"
    AGENT = "agent", "Agent (service identity)"


# What a user may reach besides the role: a change of any of these is audited.
ACCESS_FIELDS = ("is_active", "is_staff", "is_superuser")


class User(AbstractUser):
    """The platform's user: a person (admin, operator, analyst) or an agent's service identity."""

    role = models.CharField(max_length=16, choices=Role.choices, default=Role.ANALYST, db_index=True)
    # Every JWT carries the value current when it was issued ("ver" claim); bumping it (password
    # change, deactivation) makes every token issued before unusable on its next request.
    token_version = models.PositiveIntegerField(default=0, editable=False)

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        # What the row said when loaded: save() and the role signal compare against it.
        instance._loaded_role = instance.__dict__.get("role")
        instance._loaded_is_active = instance.__dict__.get("is_active")
        instance._loaded_access = {field: instance.__dict__.get(field) for field in ACCESS_FIELDS}
        return instance

    @property
    def is_agent(self) -> bool:
        return self.role == Role.AGENT

    @property
    def loaded_role(self) -> str | None:
        """The role stored in the database when this instance was loaded (None for a new user)."""
        return getattr(self, "_loaded_role", None)

    def access_changes(self) -> dict[str, dict[str, bool]]:
        """The access flags that differ from the stored ones: {"is_staff": {"from": False, "to": True}}."""
        loaded = getattr(self, "_loaded_access", None) or {}
        return {
            field: {"from": loaded[field], "to": getattr(self, field)}
            for field in ACCESS_FIELDS
            if loaded.get(field) is not None and loaded[field] != getattr(self, field)
        }

    def set_password(self, raw_password) -> None:
        """Sets a new password and retires every token issued under the old one."""
        super().set_password(raw_password)
        if self.pk is not None:
            self.token_version += 1

    def check_password(self, raw_password) -> bool:
        def rehash(raw):
            # Django re-hashes on login when the hasher's cost changes: the same password, so
            # existing tokens stay valid (AbstractBaseUser.set_password does not bump the version).
            AbstractUser.set_password(self, raw)
            compat.forget_unsaved_password(self)
            self.save(update_fields=["password"])

        return check_password(raw_password, self.password, rehash)

    def save(self, *args, **kwargs) -> None:
        bumped = False
        if getattr(self, "_loaded_is_active", None) and not self.is_active:
            self.token_version += 1
            bumped = True
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and (bumped or "password" in update_fields):
            kwargs["update_fields"] = {*update_fields, "token_version"}
        super().save(*args, **kwargs)
        self._loaded_role = self.role
        self._loaded_is_active = self.is_active
        self._loaded_access = {field: getattr(self, field) for field in ACCESS_FIELDS}


class ApiKeyQuerySet(models.QuerySet):
    def usable(self, *, now=None):
        now = now or timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class ApiKey(models.Model):
    """An agent's credential. Only a lookup prefix and a SHA-256 digest of the whole key are kept.

    The key is ``<PREFIX_TAG><prefix>.<secret>``: the prefix finds the row (and is what the admin
    shows), the digest proves the secret. Keys carry 256 bits of randomness, so a fast hash is as
    strong as a slow one here (there is no dictionary to attack) and keeps verification cheap.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True, help_text="What this key is for (e.g. the host it lives on).")
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Leave empty for a key that does not expire.")
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        verbose_name = "API key"
        verbose_name_plural = "API keys"
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name or self.user_id})"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def is_usable(self, *, now=None) -> bool:
        now = now or timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class RevokedAccessToken(models.Model):
    """The ``jti`` of an access token revoked before its expiry (logout).

    simplejwt's blacklist only covers refresh tokens; access tokens are checked against this table
    (with the shared cache in front of it), so a revocation survives a cache restart. Rows are
    useless once ``expires_at`` has passed and the cleanup job deletes them.
    """

    jti = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True)
    expires_at = models.DateTimeField(db_index=True)
    revoked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "revoked access token"

    def __str__(self) -> str:
        return self.jti


class LoginFailureCount(models.Model):
    """Failed logins of one kind of client within the failure window, and the lock they caused.

    One row per counted client (``accounts.lockout``): a device token (``device:<nonce>``), a
    username tried without a device token for it (``username:<digest>``) or a client IP without
    one (``ip:<address>``). Rows are useless once their lock and window are over; the cleanup job
    deletes them.
    """

    class Scope(models.TextChoices):
        DEVICE = "device", "Device token"
        USERNAME = "username", "Username (untrusted devices)"
        IP = "ip", "Client IP (untrusted devices)"

    key = models.CharField(max_length=80, unique=True)
    scope = models.CharField(max_length=16, choices=Scope.choices)
    # The username or address, for people reading the admin (the key of a username is a digest).
    label = models.CharField(max_length=150, blank=True)
    failures = models.PositiveIntegerField(default=0)
    last_failure_at = models.DateTimeField(db_index=True)
    locked_until = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        verbose_name = "login failure count"

    def __str__(self) -> str:
        return f"{self.scope} {self.label}: {self.failures}"
