"""The one small interface every enrichment provider implements, and its error vocabulary.

A provider turns one ``ProviderRequest`` (an operation on a normalised target) into a JSON-able
value, or raises ``ProviderError``. Errors are either *permanent* (the target is bad: retrying
cannot help and the provider's breaker must not count it) or *transient* (the provider is slow,
overloaded or down: counted by the breaker, possibly served by the next provider in a chain).
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx

# Permanent: the request or the target is at fault.
INVALID_TARGET = "invalid_target"
FORBIDDEN_TARGET = "forbidden_target"
NOT_FOUND = "not_found"
UPSTREAM_REJECTED = "upstream_rejected"
NO_TRANSCRIPT = "no_transcript"
UNSUPPORTED_CONTENT = "unsupported_content"
TOO_LARGE = "too_large"
TOO_MANY_REDIRECTS = "too_many_redirects"
NOT_CONFIGURED = "not_configured"
UNKNOWN_TOOL = "unknown_tool"
JOB_FAILED = "job_failed"
# Transient: try again later.
TIMEOUT = "timeout"
RATE_LIMITED = "rate_limited"
UPSTREAM_UNAVAILABLE = "upstream_unavailable"
UNAVAILABLE = "unavailable"  # the provider's breaker is open

TRANSIENT_CODES = frozenset({TIMEOUT, RATE_LIMITED, UPSTREAM_UNAVAILABLE, UNAVAILABLE})


class ProviderError(Exception):
    """A provider could not serve a request; ``code`` says why and whether to retry."""

    def __init__(
        self, code: str, message: str, *, retry_after: float | None = None, counts_against_provider: bool | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after
        # Whether the provider's breaker counts it: transient failures do, unless the failure is
        # the target's own (a fetched site answering 503 says nothing about our ability to fetch).
        self.counts_against_provider = self.transient if counts_against_provider is None else counts_against_provider

    @property
    def transient(self) -> bool:
        return self.code in TRANSIENT_CODES

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"code": self.code, "message": self.message, "transient": self.transient}
        if self.retry_after is not None:
            data["retry_after"] = round(self.retry_after, 3)
        return data


@dataclass(frozen=True)
class ProviderRequest:
    """One unit of work: ``operation`` on ``target`` (already normalised) with extra ``params``."""

    operation: str
    target: str
    params: dict[str, Any] = field(default_factory=dict)


class Provider:
    """Base class: subclasses set the class attributes and implement ``run``."""

    kind: ClassVar[str] = ""
    name: str = ""

    def __init__(self, *, name: str, timeout: float, cache_ttl: int) -> None:
        self.name = name
        self.timeout = timeout
        self.cache_ttl = cache_ttl

    @property
    def breaker_name(self) -> str:
        return f"enrichment.{self.name}"

    def is_configured(self) -> bool:
        return True

    def describe(self) -> dict[str, Any]:
        """What an operator may see about the configuration (never a key)."""
        return {}

    async def run(self, request: ProviderRequest, *, deadline: float) -> Any:  # pragma: no cover - interface
        """Serve ``request`` before the monotonic ``deadline`` or raise ``ProviderError``."""
        raise NotImplementedError


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def error_for_status(response: httpx.Response, *, what: str) -> ProviderError | None:
    """The ``ProviderError`` an error status means, or None for a success."""
    status = response.status_code
    if status < 400:
        return None
    detail = _upstream_message(response)
    if status == 429:
        return ProviderError(
            RATE_LIMITED,
            f"{what} is rate limiting us{detail}.",
            retry_after=retry_after_seconds(response.headers.get("Retry-After")),
        )
    if status in (502, 503, 504) or status >= 500:
        return ProviderError(
            UPSTREAM_UNAVAILABLE,
            f"{what} answered {status}{detail}.",
            retry_after=retry_after_seconds(response.headers.get("Retry-After")),
        )
    if status in (404, 410):
        return ProviderError(NOT_FOUND, f"{what} answered {status}{detail}.")
    if status == 408:
        return ProviderError(TIMEOUT, f"{what} answered 408{detail}.")
    return ProviderError(UPSTREAM_REJECTED, f"{what} answered {status}{detail}.")


def _upstream_message(response: httpx.Response) -> str:
    """Supadata-style ``{error, message, details}`` bodies, summarised (bounded, no content)."""
    if not response.headers.get("content-type", "").startswith("application/json"):
        return ""
    try:
        body = response.json()
    except (ValueError, httpx.ResponseNotRead):  # a streamed (unread) body is not worth reading
        body = None
    if isinstance(body, dict):
        parts = [str(body.get(key)) for key in ("error", "message") if body.get(key)]
        if parts:
            return ": " + " - ".join(parts)[:300]
    return ""


def transport_error(exc: httpx.HTTPError, *, what: str) -> ProviderError:
    """A network-level failure as a transient ProviderError."""
    if isinstance(exc, httpx.TimeoutException):
        return ProviderError(TIMEOUT, f"{what} did not answer in time ({exc.__class__.__name__}).")
    return ProviderError(UPSTREAM_UNAVAILABLE, f"{what} could not be reached ({exc.__class__.__name__}).")
