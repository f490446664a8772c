"""The correlation id of the unit of work in progress (a request or a task)."""

from __future__ import annotations

import contextvars
import re

from agentplatform.ids import uuid7_str

HEADER = "X-Request-ID"
META_KEY = "HTTP_X_REQUEST_ID"
# 1-128 characters of a conservative alphabet: anything else could smuggle CR/LF into logs.
_VALID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


def get_request_id() -> str | None:
    return _current.get()


def set_request_id(value: str | None) -> contextvars.Token:
    return _current.set(value)


def reset_request_id(token: contextvars.Token) -> None:
    _current.reset(token)


def new_request_id() -> str:
    return uuid7_str()


def accept_or_generate(candidate: str | None) -> str:
    """The caller's id when it is well-formed, else a fresh UUIDv7 (the bad value is dropped)."""
    if candidate and _VALID.match(candidate):
        return candidate
    return new_request_id()
