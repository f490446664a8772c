"""Runs the role-by-endpoint matrix (tests/accounts/matrix.py) and checks every refusal's shape."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.accounts.matrix import MATRIX, ROLES, call


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint", MATRIX, ids=str)
def test_role_gets_the_status_the_matrix_declares(endpoint, role, auth_client):
    client = APIClient() if role == "anonymous" else auth_client(role)
    response = call(client, endpoint)
    assert response.status_code == endpoint.expected[role], response.content
    if response.status_code >= 400:
        assert set(response.json()["error"]) == {"code", "message", "details", "request_id"}
