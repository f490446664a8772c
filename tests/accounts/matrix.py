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
]


def call(client, endpoint: Endpoint):
    method = getattr(client, endpoint.method.lower())
    if endpoint.payload is None:
        return method(endpoint.url)
    return method(endpoint.url, endpoint.payload, format="json")
