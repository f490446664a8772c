"""Fixtures for the platform layer: a local HTTP server standing in for upstream services."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agentplatform import breakers


@dataclass
class Upstream:
    """A loopback HTTP server whose answers the test scripts.

    ``GET /status/<code>`` answers that status (``?retry_after=N`` adds the header); ``GET /slow``
    waits until ``release`` is set; every request's headers are kept in ``received``.
    """

    url: str
    received: list[dict[str, str]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    slow_entered: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    state = Upstream(url="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output clean
            pass

        def do_GET(self):
            state.received.append({key.lower(): value for key, value in self.headers.items()})
            path, _, query = self.path.partition("?")
            if path == "/slow":
                state.slow_entered.set()
                state.release.wait(timeout=30)
                status = 200
            elif path.startswith("/status/"):
                status = int(path.rsplit("/", 1)[1])
            else:
                status = 200
            self.send_response(status)
            if query.startswith("retry_after="):
                self.send_header("Retry-After", query.split("=", 1)[1])
            body = b'{"ok": true}'
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def fresh_breakers() -> Iterator[None]:
    """Every test gets new breaker instances (their shared state is in the flushed test Redis db)."""
    breakers.reset_registry()
    yield
    breakers.flush_transitions()
    breakers.reset_registry()


def free_port() -> int:
    """A loopback TCP port nothing listens on (for "service unreachable" tests and private servers)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_redis_server(port: int) -> subprocess.Popen:
    """Starts a redis-server of the test's own on ``port`` (loopback, no persistence) and waits for it."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail("private redis-server did not start")
            time.sleep(0.02)  # waiting for a child process to listen, not for correctness


def stop_redis_server(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(10)


@pytest.fixture(scope="module")
def private_redis() -> Iterator[str]:
    """A redis-server of the test's own on a free loopback port (never the shared one), as a URL."""
    port = free_port()
    process = start_redis_server(port)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_redis_server(process)
