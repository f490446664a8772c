"""Typed access to environment variables: the one place settings are parsed.

Every reader raises ``ImproperlyConfigured`` naming the variable and what was
wrong with it, so a bad deployment fails at start-up with a readable message
instead of misbehaving later.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_RATE_RE = re.compile(r"^(?P<count>\d+)/(?P<multiplier>\d*)(?P<unit>[smhd])$")

_MISSING = object()


class Env:
    """Reads variables from a mapping (``os.environ`` by default)."""

    def __init__(self, source: Mapping[str, str] | None = None) -> None:
        self.source = os.environ if source is None else source

    def _raw(self, name: str, default):
        value = self.source.get(name)
        if value is None:
            if default is _MISSING:
                raise ImproperlyConfigured(f"Environment variable {name} is required but not set.")
            return default
        return value

    def str(self, name: str, default=_MISSING) -> str:
        return self._raw(name, default)

    def bool(self, name: str, default=_MISSING) -> bool:
        value = self._raw(name, default)
        if isinstance(value, bool):
            return value
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ImproperlyConfigured(
            f"Environment variable {name}={value!r} is not a boolean (use 1/0, true/false, yes/no, on/off)."
        )

    def int(self, name: str, default=_MISSING, *, minimum: int | None = None, maximum: int | None = None) -> int:
        value = self._raw(name, default)
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ImproperlyConfigured(f"Environment variable {name}={value!r} is not an integer.") from None
        if minimum is not None and number < minimum:
            raise ImproperlyConfigured(f"Environment variable {name}={number} is below the minimum {minimum}.")
        if maximum is not None and number > maximum:
            raise ImproperlyConfigured(f"Environment variable {name}={number} is above the maximum {maximum}.")
        return number

    def float(self, name: str, default=_MISSING, *, minimum: float | None = None) -> float:
        value = self._raw(name, default)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ImproperlyConfigured(f"Environment variable {name}={value!r} is not a number.") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise ImproperlyConfigured(f"Environment variable {name}={value!r} is not a finite number.")
        if minimum is not None and number < minimum:
            raise ImproperlyConfigured(f"Environment variable {name}={number} is below the minimum {minimum}.")
        return number

    def list(self, name: str, default=_MISSING) -> list[str]:
        value = self._raw(name, default)
        if isinstance(value, list):
            return value
        return [item.strip() for item in value.split(",") if item.strip()]

    def choice(self, name: str, choices: tuple[str, ...], default=_MISSING) -> str:
        value = self._raw(name, default)
        if value not in choices:
            raise ImproperlyConfigured(f"Environment variable {name}={value!r} must be one of {', '.join(choices)}.")
        return value

    def rate(self, name: str, default=_MISSING) -> str:
        """A rate-limit rate such as ``6000/m`` or ``10/5m`` (``agentplatform.ratelimit.parse_rate``)."""
        value = self._raw(name, default)
        return parse_rate(value, name=name)


def parse_rate(value: str, *, name: str = "rate") -> str:
    value = value.strip()
    match = _RATE_RE.match(value)
    if not match or int(match["count"]) <= 0 or match["multiplier"] == "0":
        raise ImproperlyConfigured(
            f"{name}={value!r} is not a rate: use N/period with period s, m, h or d (e.g. 6000/m, 10/5m)."
        )
    return value


env = Env()
