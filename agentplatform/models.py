"""The platform layer's own records."""

from __future__ import annotations

from django.db import models


class BreakerState(models.TextChoices):
    CLOSED = "closed", "Closed"
    OPEN = "open", "Open"
    HALF_OPEN = "half-open", "Half-open"


class BreakerTransition(models.Model):
    """One state change of a circuit breaker, as made by one process (see ``agentplatform.breakers``)."""

    breaker = models.CharField(max_length=100)
    from_state = models.CharField(max_length=16, choices=BreakerState.choices, blank=True)
    to_state = models.CharField(max_length=16, choices=BreakerState.choices)
    at = models.DateTimeField()
    # The failure that opened the breaker ("ExceptionClass: message", truncated); empty otherwise.
    last_error = models.TextField(blank=True)
    # "shared" when the state lived in Redis, "local" when Redis was unreachable and the change
    # only applied to the process that made it.
    storage = models.CharField(max_length=16, blank=True)
    process = models.CharField(max_length=200, blank=True, help_text="host:pid that made the change")
    request_id = models.CharField(max_length=128, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["breaker", "-at"], name="breakertransition_recent")]

    def __str__(self) -> str:
        return f"{self.breaker}: {self.from_state or '?'} -> {self.to_state} at {self.at:%Y-%m-%d %H:%M:%S}"
