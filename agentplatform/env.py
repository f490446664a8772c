"""Typed access to environment variables: the one place settings are parsed.

Every reader raises ``ImproperlyConfigured`` naming the variable and what was
wrong with it, so a bad deployment fails at start-up with a readable message
instead of misbehaving later.
"""

from __future__ import annotations

import ipaddress
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

    def networks(self, name: str, default=_MISSING) -> tuple[str, ...]:
        """Comma-separated CIDRs or single addresses, as normalised network strings (``10.0.0.0/8``)."""
        networks = []
        for item in self.list(name, default):
            try:
                networks.append(str(ipaddress.ip_network(item, strict=False)))
            except ValueError:
                raise ImproperlyConfigured(
                    f"Environment variable {name} entry {item!r} is not an IP network (e.g. 10.0.0.0/8, 172.18.0.5)."
                ) from None
        return tuple(networks)

    def choice(self, name: str, choices: tuple[str, ...], default=_MISSING) -> str:
        value = self._raw(name, default)
        if value not in choices:
            raise ImproperlyConfigured(f"Environment variable {name}={value!r} must be one of {', '.join(choices)}.")
        return value

    def rate(self, name: str, default=_MISSING) -> str:
        """A rate-limit rate such as ``6000/m`` or ``10/5m`` (``agentplatform.ratelimit.parse_rate``)."""
        value = self._raw(name, default)
        return parse_rate(value, name=name)


# What .env.example's placeholder secrets contain: a value with it was copied, not generated.
PLACEHOLDER_MARKER = "change-me"
# Characters: HS256 wants a key at least as long as its 256-bit hash, 32 bytes (RFC 7518, 3.2);
# a shorter key can be brute-forced offline from a single signed token.
SECRET_MIN_LENGTH = 32
# Distinct characters: rejects long but trivially guessable values ("aaaa...", "0123012301230123...").
SECRET_MIN_DISTINCT_CHARACTERS = 10
GENERATE_HINT = 'generate one with: python -c "import secrets; print(secrets.token_urlsafe(50))"'


def check_secrets(secrets: Mapping[str, str]) -> None:
    """Refuses placeholder, short, repetitive or shared secrets, naming the variable at fault.

    ``secrets`` maps variable names to values, in the order they are reported. Empty values are
    skipped: whether a secret is required at all is the caller's rule. Never echoes a value.
    """
    checked: dict[str, str] = {}
    for name, value in secrets.items():
        if not value:
            continue
        if PLACEHOLDER_MARKER in value.lower():
            problem = f"contains the placeholder {PLACEHOLDER_MARKER!r} from .env.example"
        elif len(value) < SECRET_MIN_LENGTH:
            problem = f"is {len(value)} characters long; at least {SECRET_MIN_LENGTH} are required"
        elif len(set(value)) < SECRET_MIN_DISTINCT_CHARACTERS:
            problem = (
                f"has only {len(set(value))} distinct characters; at least "
                f"{SECRET_MIN_DISTINCT_CHARACTERS} are required"
            )
        else:
            same = [other for other, other_value in checked.items() if other_value == value]
            problem = f"must differ from {same[0]} (each secret has its own value)" if same else ""
        if problem:
            raise ImproperlyConfigured(f"Environment variable {name} {problem}: {GENERATE_HINT}.")
        checked[name] = value


def parse_rate(value: str, *, name: str = "rate") -> str:
    value = value.strip()
    match = _RATE_RE.match(value)
    if not match or int(match["count"]) <= 0 or match["multiplier"] == "0":
        raise ImproperlyConfigured(
            f"{name}={value!r} is not a rate: use N/period with period s, m, h or d (e.g. 6000/m, 10/5m)."
        )
    return value


env = Env()
