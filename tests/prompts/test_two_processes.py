"""A label moved while two web processes serve: both serve the new version at their next snapshot check.

Two real servers (``runserver``) share only PostgreSQL and Redis with this process, which moves the
label through the service, as the API or the admin would.
"""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from django.db import connection

from prompts import services
from tests.accounts.test_jwt_processes import two_web_processes  # noqa: F401 (a fixture)

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the servers need the shared test database"),
    pytest.mark.django_db(transaction=True),
]


def _get(base: str, path: str, headers: dict[str, str], body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        base + path,
        data=data,
        headers={**headers, "Content-Type": "application/json"},
        method="POST" if body else "GET",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read())


def _served(base: str, headers: dict[str, str]) -> tuple[int, int]:
    """(version under production by the label endpoint, version resolve answers) on one server."""
    _, label = _get(base, "/api/v1/prompts/support/labels/production", headers)
    _, resolved = _get(base, "/api/v1/prompts/resolve", headers, {"user_id": "u1", "prompt_type": "support"})
    assert resolved["source"] == "label"
    return label["version"], resolved["prompt"]["version"]


def test_a_label_moved_while_two_web_processes_serve_reaches_both(two_web_processes, agent_key, user_factory):  # noqa: F811
    admin = user_factory(role="admin")
    prompt = services.prompt_create(actor=admin, key="support")
    services.prompt_version_create(actor=admin, prompt=prompt, content="one", labels=["production"])
    services.prompt_version_create(actor=admin, prompt=prompt, content="two")
    headers = {"Authorization": agent_key["HTTP_AUTHORIZATION"]}
    first, second = two_web_processes
    assert _served(first, headers) == (1, 1)
    assert _served(second, headers) == (1, 1)

    services.prompt_label_move(actor=admin, prompt=prompt, label="production", version=2, reason="ship two")

    # Each process re-checks the shared version at most once per EXPERIMENTS_SNAPSHOT_CHECK_SECONDS;
    # the generous deadline only keeps a broken build from hanging the suite.
    seen = {first: (1, 1), second: (1, 1)}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and set(seen.values()) != {(2, 2)}:
        for base in seen:
            seen[base] = _served(base, headers)
        time.sleep(0.1)
    assert seen == {first: (2, 2), second: (2, 2)}
