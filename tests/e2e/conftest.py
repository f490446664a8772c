"""Fixtures of the end-to-end flows: a real Celery worker and fake outside sources on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

# The jobs app's in-thread worker (Redis test database as broker when available, else memory://).
from tests.reports.conftest import celery_worker  # noqa: F401


@dataclass
class FakeSources:
    """A web page and a SearxNG-compatible search API, served from 127.0.0.1."""

    port: int = 0
    hits: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Mina Cho - cooking creator</title></head>
<body><article><h1>Mina Cho</h1>
<p>Mina Cho publishes weekly Korean home-cooking videos for beginners, with step-by-step recipes,
shopping lists and budget tips. Her audience is mostly students living alone for the first time.</p>
<p>She has published 140 videos since 2021 and answers every comment on Sunday evenings.</p>
</article></body></html>"""


def _handler(state: FakeSources):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            split = urlsplit(self.path)
            state.hits.append(split.path)
            if split.path == "/creators/mina":
                body, content_type = PAGE.encode(), "text/html; charset=utf-8"
            elif split.path == "/search":
                query = parse_qs(split.query).get("q", [""])[0]
                results = [
                    {
                        "title": f"Result for {query}",
                        "url": f"{state.url}/creators/mina",
                        "content": f"{query}: beginner recipes and budget tips",
                    }
                ]
                body, content_type = json.dumps({"query": query, "results": results}).encode(), "application/json"
            else:
                body, content_type = b"not found", "text/plain"
            self.send_response(200 if content_type != "text/plain" else 404)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


@pytest.fixture
def fake_sources(settings) -> Iterator[FakeSources]:
    """Starts the fake sources and opens the SSRF guard for exactly their host:port."""
    from agentplatform import breakers

    state = FakeSources()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    settings.ENRICHMENT_ALLOWED_PRIVATE = [f"127.0.0.1:{state.port}"]
    settings.SEARCH_BASE_URL = state.url
    settings.SEARCH_FALLBACK_BASE_URL = ""
    breakers.reset_registry()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        breakers.reset_registry()
