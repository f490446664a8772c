"""Fixtures for the enrichment tests: scriptable upstreams on loopback, users, clean breakers.

Nothing here reaches past 127.0.0.1: upstreams are servers these fixtures start, and the SSRF
guard's allow-list is opened for exactly their host:port.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import override_settings

from agentplatform import breakers
from enrichment import health


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class Reply:
    status: int = 200
    body: bytes | str | dict | list = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None
    wait: threading.Event | None = None  # block until set (a slow upstream), no sleeping


Route = Callable[[Received], Reply] | Reply


@dataclass
class FakeUpstream:
    """A threaded HTTP server on 127.0.0.1 answering scripted routes and recording requests."""

    host: str
    port: int
    routes: dict[tuple[str, str], Route] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def allow_entry(self) -> str:
        return f"{self.host}:{self.port}"

    def route(self, path: str, reply: Route, *, method: str = "GET") -> None:
        self.routes[(method, path)] = reply

    def hits(self, path: str) -> int:
        return sum(1 for item in self.received if item.path == path)

    def slow(self) -> Reply:
        """A reply that blocks until the test ends (or ``release`` is set)."""
        return Reply(body="late", content_type="text/plain", wait=self.release)


def _make_handler(state: FakeUpstream):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _serve(self):
            split = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            received = Received(
                method=self.command,
                path=split.path,
                query=parse_qs(split.query),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self.rfile.read(length) if length else b"",
            )
            state.received.append(received)
            route = state.routes.get((self.command, split.path))
            reply = (route(received) if callable(route) else route) if route else Reply(404, {"error": "not-found"})
            if reply.wait is not None:
                reply.wait.wait(timeout=30)
            body = reply.body
            content_type = reply.content_type
            if isinstance(body, dict | list):
                body = json.dumps(body).encode()
                content_type = content_type or "application/json"
            elif isinstance(body, str):
                body = body.encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", content_type or "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(body)

        do_GET = _serve
        do_POST = _serve

    return Handler


@pytest.fixture
def make_upstream() -> Iterator[Callable[..., FakeUpstream]]:
    servers: list[tuple[ThreadingHTTPServer, FakeUpstream]] = []

    def start(host: str = "127.0.0.1") -> FakeUpstream:
        state = FakeUpstream(host=host, port=0)
        server_class = ThreadingHTTPServer
        if ":" in host:
            server_class = type("V6Server", (ThreadingHTTPServer,), {"address_family": socket.AF_INET6})
        server = server_class((host, 0), _make_handler(state))
        server.daemon_threads = True
        state.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append((server, state))
        return state

    yield start
    for server, state in servers:
        state.release.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def upstream(make_upstream) -> FakeUpstream:
    return make_upstream()


@pytest.fixture
def allow(settings) -> Callable[..., None]:
    """Open the SSRF guard for exactly these loopback upstreams."""

    def _allow(*upstreams: FakeUpstream) -> None:
        settings.ENRICHMENT_ALLOWED_PRIVATE = [u.allow_entry for u in upstreams]

    return _allow


@pytest.fixture(autouse=True)
def _isolated_enrichment(settings) -> Iterator[None]:
    """No configured upstream unless a test sets one; fresh breakers and health samples."""
    settings.SEARCH_BASE_URL = ""
    settings.SEARCH_FALLBACK_BASE_URL = ""
    settings.SUPADATA_API_KEY = ""
    settings.MCP_SERVERS = {}
    settings.ENRICHMENT_ALLOWED_PRIVATE = []
    settings.SUPADATA_POLL_INTERVAL = 0.01
    breakers.reset_registry()
    health.reset()
    yield
    breakers.flush_transitions()
    breakers.reset_registry()
    health.reset()


def user_with(*perms: str, username: str = "agent-1", role: str = "agent", role_permissions: bool = True):
    """A user of ``role`` (its group carries the role's permissions) plus ``perms``; without the
    role's permissions when ``role_permissions`` is False."""
    user = get_user_model().objects.create_user(username=username, password="x-unused-password-1", role=role)
    if not role_permissions:
        user.groups.clear()
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return get_user_model().objects.get(pk=user.pk)  # fresh: permission caches are per instance


@pytest.fixture
def agent(db):
    """An agent: its role alone carries enrichment.fetch_context and document search."""
    return user_with()


@pytest.fixture
def agent_client(api_client, agent):
    api_client.force_authenticate(agent)
    return api_client


def wait_until(predicate: Callable[[], bool], *, timeout: float = 5.0) -> bool:
    """Poll a condition set by another thread (server start-up), bounded."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def json_of(response) -> Any:
    return response.json() if hasattr(response, "json") else json.loads(response.content)


__all__ = ["FakeUpstream", "Reply", "json_of", "override_settings", "user_with", "wait_until"]
