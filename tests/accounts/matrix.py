"""The role-by-endpoint matrix: every API endpoint, the status each role gets.

Add an endpoint with one line in ``MATRIX``::

    Endpoint("POST", "/api/v1/experiments/", {"key": "x"}, expect(agent=403, analyst=403, operator=201, admin=201)),

``expect`` defaults anonymous callers to 401 (every endpoint needs authentication unless it says
otherwise). Callers are fresh users of each role, authenticated the way they are in production
(Bearer JWT for people, Api-Key for agents), so the matrix tests the role table, the permission
classes and both authentication paths at once. ``tests/accounts/test_matrix.py`` runs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ROLES = ("anonymous", "agent", "analyst", "operator", "admin")
MISSING = "no-such-experiment"  # a key that never exists: 404 once permission is granted


def expect(*, anonymous: int = 401, agent: int, analyst: int, operator: int, admin: int) -> dict[str, int]:
    return {"anonymous": anonymous, "agent": agent, "analyst": analyst, "operator": operator, "admin": admin}


def everyone(status: int, *, anonymous: int = 401) -> dict[str, int]:
    return expect(anonymous=anonymous, agent=status, analyst=status, operator=status, admin=status)


@dataclass(frozen=True)
class Endpoint:
    method: str
    url: str
    payload: dict | None
    expected: dict[str, int] = field(hash=False)

    def __str__(self) -> str:
        return f"{self.method} {self.url}"


MATRIX: list[Endpoint] = [
    # accounts: credentials in the body, so any caller gets the same answer for bad ones.
    Endpoint("POST", "/api/v1/auth/token", {"username": "nobody", "password": "wrong"}, everyone(401, anonymous=401)),
    Endpoint("POST", "/api/v1/auth/token/refresh", {"refresh": "not-a-token"}, everyone(401, anonymous=401)),
    Endpoint("POST", "/api/v1/auth/logout", {}, everyone(400)),
    Endpoint("GET", "/api/v1/auth/me", None, everyone(200)),
    # experiments: a missing key is 404 for those allowed, 403 for the rest;
    # an empty body is 400 for those allowed. Permission is decided before either.
    Endpoint("POST", "/api/v1/prompts/resolve", {}, expect(agent=400, analyst=403, operator=403, admin=400)),
    Endpoint(
        "GET", "/api/v1/experiments/growthbook-features", None, expect(agent=200, analyst=403, operator=403, admin=200)
    ),
    Endpoint("POST", "/api/v1/experiments/exposures", {}, expect(agent=400, analyst=403, operator=403, admin=400)),
    Endpoint("GET", "/api/v1/experiments/", None, expect(agent=403, analyst=200, operator=200, admin=200)),
    Endpoint("POST", "/api/v1/experiments/", {}, expect(agent=403, analyst=403, operator=400, admin=400)),
    Endpoint("GET", f"/api/v1/experiments/{MISSING}/", None, expect(agent=403, analyst=404, operator=404, admin=404)),
    Endpoint("PATCH", f"/api/v1/experiments/{MISSING}/", {}, expect(agent=403, analyst=403, operator=404, admin=404)),
    Endpoint(
        "DELETE", f"/api/v1/experiments/{MISSING}/", None, expect(agent=403, analyst=403, operator=404, admin=404)
    ),
    Endpoint(
        "POST", f"/api/v1/experiments/{MISSING}/start", {}, expect(agent=403, analyst=403, operator=404, admin=404)
    ),
    Endpoint(
        "POST", f"/api/v1/experiments/{MISSING}/pause", {}, expect(agent=403, analyst=403, operator=404, admin=404)
    ),
    Endpoint(
        "POST", f"/api/v1/experiments/{MISSING}/stop", {}, expect(agent=403, analyst=403, operator=404, admin=404)
    ),
    # Promoting needs experiments.run_experiment; moving a protected production label is checked after
    # (a 403 for operators on a real experiment: tests/experiments/test_promote.py).
    Endpoint(
        "POST",
        f"/api/v1/experiments/{MISSING}/promote",
        {"variant": "b"},
        expect(agent=403, analyst=403, operator=404, admin=404),
    ),
    Endpoint(
        "POST", f"/api/v1/experiments/{MISSING}/results", {}, expect(agent=400, analyst=403, operator=403, admin=400)
    ),
    Endpoint(
        "GET", f"/api/v1/experiments/{MISSING}/stats", None, expect(agent=403, analyst=404, operator=404, admin=404)
    ),
    # prompts (registry): everyone who reads reads; operators and admins write. Permission is decided
    # before the key is looked up, so a missing key is 404 only for those allowed.
    Endpoint("GET", "/api/v1/prompts/", None, everyone(200)),
    Endpoint("POST", "/api/v1/prompts/", {}, expect(agent=403, analyst=403, operator=400, admin=400)),
    Endpoint("GET", f"/api/v1/prompts/{MISSING}", None, everyone(404)),
    Endpoint("PATCH", f"/api/v1/prompts/{MISSING}", {}, expect(agent=403, analyst=403, operator=404, admin=404)),
    Endpoint("GET", f"/api/v1/prompts/{MISSING}/versions", None, everyone(404)),
    Endpoint(
        "POST", f"/api/v1/prompts/{MISSING}/versions", {}, expect(agent=403, analyst=403, operator=404, admin=404)
    ),
    Endpoint("GET", f"/api/v1/prompts/{MISSING}/versions/1", None, everyone(404)),
    # Versions are immutable: a 405 for anyone who may read them.
    Endpoint("PUT", f"/api/v1/prompts/{MISSING}/versions/1", {}, everyone(405)),
    Endpoint("DELETE", f"/api/v1/prompts/{MISSING}/versions/1", None, everyone(405)),
    Endpoint(
        "PUT", f"/api/v1/prompts/{MISSING}/labels/staging", {}, expect(agent=403, analyst=403, operator=404, admin=404)
    ),
    Endpoint("GET", f"/api/v1/prompts/{MISSING}/labels/staging/history", None, everyone(404)),
    # The label read agents call (the same URL's GET): everyone who reads the registry.
    Endpoint("GET", f"/api/v1/prompts/{MISSING}/labels/production", None, everyone(404)),
    # audit: agents write and read their own; people read; only agents and admins write.
    Endpoint("POST", "/api/v1/audit/events", {}, expect(agent=400, analyst=403, operator=403, admin=400)),
    Endpoint("GET", "/api/v1/audit/events", None, everyone(200)),
    Endpoint("GET", "/api/v1/audit/stats", None, everyone(200)),
    # monitoring: agents push; people read.
    Endpoint("POST", "/api/v1/monitoring/operations", {}, expect(agent=400, analyst=403, operator=403, admin=400)),
    # traces: {} is a valid, empty OTLP/JSON export (nothing to store).
    Endpoint("POST", "/api/v1/otel/v1/traces", {}, expect(agent=200, analyst=403, operator=403, admin=200)),
    # Agents read their own traces (another's is a 404, as a missing one); people read all.
    Endpoint("GET", "/api/v1/traces", None, everyone(200)),
    Endpoint("GET", f"/api/v1/traces/{'0' * 32}", None, everyone(404)),
    # Model prices: people read, admins write; agents neither.
    Endpoint("GET", "/api/v1/model-prices", None, expect(agent=403, analyst=200, operator=200, admin=200)),
    Endpoint("POST", "/api/v1/model-prices", {}, expect(agent=403, analyst=403, operator=403, admin=400)),
    Endpoint("GET", "/api/v1/model-prices/999999999", None, expect(agent=403, analyst=404, operator=404, admin=404)),
    Endpoint("PUT", "/api/v1/model-prices/999999999", {}, expect(agent=403, analyst=403, operator=403, admin=404)),
    Endpoint("DELETE", "/api/v1/model-prices/999999999", None, expect(agent=403, analyst=403, operator=403, admin=404)),
    Endpoint("POST", "/api/v1/monitoring/agent-runs", {}, expect(agent=400, analyst=403, operator=403, admin=400)),
    Endpoint("GET", "/api/v1/monitoring/summary", None, expect(agent=403, analyst=200, operator=200, admin=200)),
    # enrichment: agents fetch context; everyone may search collected documents.
    Endpoint("POST", "/api/v1/enrichment/context", {}, expect(agent=200, analyst=403, operator=403, admin=200)),
    Endpoint("GET", "/api/v1/documents/search?q=matrix", None, everyone(200)),
    # reports: people read.
    Endpoint("GET", "/api/v1/reports/", None, expect(agent=403, analyst=200, operator=200, admin=200)),
    Endpoint("GET", "/api/v1/reports/999999999", None, expect(agent=403, analyst=404, operator=404, admin=404)),
]


def call(client, endpoint: Endpoint):
    method = getattr(client, endpoint.method.lower())
    if endpoint.payload is None:
        return method(endpoint.url)
    return method(endpoint.url, endpoint.payload, format="json")
