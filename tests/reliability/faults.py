"""Fault-injection helpers: a private redis-server and a TCP proxy that can be cut.

Both listen on free loopback ports the test owns; nothing here touches the machine's shared
PostgreSQL or Redis (the proxy forwards to the shared PostgreSQL and is what gets cut).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, *, up: bool, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                if up:
                    return
        except OSError:
            if not up:
                return
        time.sleep(0.02)
    raise TimeoutError(f"port {port} did not go {'up' if up else 'down'} within {timeout}s")


class PrivateRedis:
    """``redis-server`` on a free loopback port, with an append-only file so a restart keeps data
    (as a production Redis would); ``persistent=False``: none, so a restart starts empty (a cache
    or a Redis without AOF)."""

    def __init__(self, directory: Path, *, persistent: bool = True) -> None:
        self.binary = shutil.which("redis-server")
        self.port = free_port()
        self.directory = directory
        self.persistent = persistent
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.directory),
                "--appendonly",
                "yes" if self.persistent else "no",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--protected-mode",
                "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, up=True)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        wait_for_port(self.port, up=False)

    def shutdown_nosave(self) -> None:
        """``SHUTDOWN NOSAVE``: the server exits without writing its memory anywhere (a crash, or
        the restart of a Redis without persistence)."""
        import redis

        with contextlib.suppress(redis.ConnectionError):  # the server closes the connection as it exits
            redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5).shutdown(nosave=True)
        if self.process:
            self.process.wait(timeout=10)
        wait_for_port(self.port, up=False)


class CuttableProxy:
    """A threaded TCP proxy on a free loopback port in front of ``target``.

    ``cut()`` resets every open connection and refuses new ones (the dependency is unreachable);
    ``restore()`` forwards again. ``drop_reply_holding(marker)``: the next reply of the target that
    holds ``marker`` is not forwarded and its connection is closed (the target did the work, the
    client never hears so: an acknowledgement lost); new connections are forwarded as before.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open = True
        self.closed = False
        self.sockets: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.reply_marker: bytes | None = None
        self.dropped_replies = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open:
                self._reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                self._reset(client)
                continue
            with self.lock:
                self.sockets |= {client, upstream}
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, replies: bool = False) -> None:
        try:
            while data := source.recv(65536):
                if replies and self._drops(data):
                    return  # not forwarded; both sides are shut down below, the client sees the close
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def _drops(self, data: bytes) -> bool:
        with self.lock:
            if self.reply_marker is None or self.reply_marker not in data:
                return False
            self.reply_marker = None
            self.dropped_replies += 1
            return True

    def drop_reply_holding(self, marker: bytes) -> None:
        with self.lock:
            self.reply_marker = marker

    @staticmethod
    def _reset(sock: socket.socket) -> None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            sock.close()
        except OSError:
            pass

    def cut(self) -> None:
        self.open = False
        with self.lock:
            sockets, self.sockets = self.sockets, set()
        for sock in sockets:
            self._reset(sock)

    def restore(self) -> None:
        self.open = True

    def close(self) -> None:
        self.closed = True
        self.cut()
        self.listener.close()


class ScriptedUpstream:
    """An HTTP upstream on a free loopback port whose behaviour the test switches at any time.

    ``mode`` is ``"hang"`` (accept the connection, never read or answer: a provider that hangs),
    ``"error"`` (answer 500) or ``"ok"`` (answer 200 with ``ok_body`` as JSON). ``accepted`` counts
    connections, so a test can tell a call that was refused before reaching the upstream;
    ``held`` is how many hung connections are open; ``release_held()`` resets them.
    """

    def __init__(self, *, ok_body: bytes = b"{}", mode: str = "hang") -> None:
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = self.listener.getsockname()[1]
        self.ok_body = ok_body
        self.mode = mode
        self.accepted = 0
        self.closed = False
        self._held: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def held(self) -> int:
        with self.lock:
            return len(self._held)

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
                mode = self.mode
                if mode == "hang":
                    self._held.append(conn)
                    continue
            threading.Thread(target=self._answer, args=(conn, mode), daemon=True).start()

    def _answer(self, conn: socket.socket, mode: str) -> None:
        with contextlib.closing(conn):
            try:
                conn.settimeout(10)
                request = b""
                while b"\r\n\r\n" not in request and len(request) < 65536:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    request += chunk
                status, body = ("200 OK", self.ok_body) if mode == "ok" else ("500 Internal Server Error", b"{}")
                head = (
                    f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                )
                conn.sendall(head.encode() + body)
            except OSError:
                pass

    def release_held(self) -> None:
        with self.lock:
            held, self._held = self._held, []
        for conn in held:
            CuttableProxy._reset(conn)

    def close(self) -> None:
        self.closed = True
        self.release_held()
        self.listener.close()


@contextlib.contextmanager
def default_database_through_proxy():
    """Every new connection to the default database goes through a ``CuttableProxy`` the test can cut."""
    from django.db import connections

    settings_dict = connections["default"].settings_dict
    original = (settings_dict["HOST"], settings_dict["PORT"])
    proxy = CuttableProxy((settings_dict["HOST"] or "127.0.0.1", int(settings_dict["PORT"] or 5432)))
    connections["default"].close()
    settings_dict["HOST"], settings_dict["PORT"] = "127.0.0.1", str(proxy.port)
    try:
        yield proxy
    finally:
        proxy.restore()
        connections["default"].close()
        settings_dict["HOST"], settings_dict["PORT"] = original
        proxy.close()
