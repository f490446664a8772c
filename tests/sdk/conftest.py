"""A live platform the SDK tests can stop and start again, an agent's API key, and SDK clients.

``LivePlatform`` serves the project's WSGI application from a thread of the test process on a
free loopback port (the test's PostgreSQL database and Redis, as every test). ``stop()`` closes the
listening socket and every open connection, as a process that exited would; ``start()`` listens
on the same port again. The SDK under test is the installed ``agentops_client`` (``pip install
./sdk/python``; CI installs the wheel it builds).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.core.wsgi import get_wsgi_application

from tests.reliability.faults import free_port, wait_for_port


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):  # the access log would flood the test output
        pass


class _Server(ThreadedWSGIServer):
    """Remembers its connections so that stopping it closes them too (keep-alive included)."""

    allow_reuse_address = True

    def __init__(self, *args, **kwargs):
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def get_request(self):
        request, address = super().get_request()
        # wsgiref writes the head and the body separately: without this every answer waits for
        # the client's delayed ACK (~40 ms), as gunicorn avoids by setting it too.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.sockets_lock:
            self.open_sockets.add(request)
        return request, address

    def shutdown_request(self, request):
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def close_everything(self) -> None:
        with self.sockets_lock:
            sockets, self.open_sockets = self.open_sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()


class LivePlatform:
    def __init__(self) -> None:
        self.port = free_port()
        self.app = get_wsgi_application()
        self.server: _Server | None = None
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        deadline = time.monotonic() + 10
        while True:
            try:
                server = _Server(("127.0.0.1", self.port), _QuietHandler)
                break
            except OSError:  # the old socket's port not released yet
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        server.set_app(self.app)
        self.server = server
        self.thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        wait_for_port(self.port, up=True)

    def stop(self) -> None:
        if self.server is None:
            return
        self.server.shutdown()
        self.server.server_close()
        self.server.close_everything()
        self.thread.join(timeout=10)
        self.server = None
        wait_for_port(self.port, up=False)


@pytest.fixture
def platform(transactional_db, settings) -> Iterator[LivePlatform]:
    """The platform, running; rate limits off (the tests send 10,000s of requests from one key)."""
    from django.db import connections

    settings.RATELIMIT_ENABLE = False
    live = LivePlatform()
    live.start()
    try:
        yield live
    finally:
        live.stop()
        connections.close_all()


@pytest.fixture
def agent_api_key(user_factory) -> str:
    from accounts.services import api_key_create

    agent = user_factory(role="agent", username="sdk-agent", password=None)
    return api_key_create(user=agent, name="sdk tests")[1]


@pytest.fixture
def admin(user_factory):
    return user_factory(role="admin")


@pytest.fixture
def clients() -> Iterator[list]:
    """SDK clients a test makes; each is closed at the end (at once: a test's server may be gone)."""
    made: list = []
    yield made
    for client in made:
        client.close(timeout=0)


@pytest.fixture
def make_client(platform, agent_api_key, clients):
    from agentops_client import AgentOps

    # The first request of a key verifies it (a slow hash by design): once, before any client's
    # timeouts start counting, so a loaded test machine does not turn it into an outage.
    httpx.get(f"{platform.url}/readyz", timeout=60)
    httpx.get(
        f"{platform.url}/api/v1/experiments/growthbook-features",
        headers={"Authorization": f"Api-Key {agent_api_key}"},
        timeout=60,
    )

    def make(**options) -> AgentOps:
        options.setdefault("timeout", 10.0)
        options.setdefault("flush_interval", 0.1)
        options.setdefault("max_retry_delay", 0.5)
        client = AgentOps(options.pop("base_url", platform.url), options.pop("api_key", agent_api_key), **options)
        clients.append(client)
        return client

    return make


def experiment_start(*, actor, key: str, prompt_type: str, user_percentage: int, variants: list[dict]):
    """A started experiment, through the services."""
    from experiments.services import lifecycle

    experiment = lifecycle.experiment_create(
        actor=actor,
        data={
            "key": key,
            "name": key.title(),
            "target_prompt_type": prompt_type,
            "primary_metric": "success_rate",
            "user_percentage": user_percentage,
            "variants": variants,
        },
    )
    return lifecycle.experiment_start(actor=actor, experiment=experiment)


def two_variants(prompt_type: str) -> list[dict]:
    return [
        {
            "key": "control",
            "content": f"You are the {prompt_type} agent, {{{{name}}}}.",
            "weight": 1,
            "is_control": True,
        },
        {"key": "warm", "content": f"You are the warm {prompt_type} agent, {{{{name}}}}.", "weight": 1},
    ]
