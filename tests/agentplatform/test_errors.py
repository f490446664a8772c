import pytest

ENVELOPE_KEYS = {"code", "message", "details", "request_id"}


def test_unknown_api_path_gets_404_envelope_with_request_id(client):
    response = client.get("/api/v1/does-not-exist", HTTP_X_REQUEST_ID="trace-404")
    assert response.status_code == 404
    error = response.json()["error"]
    assert set(error) == ENVELOPE_KEYS
    assert error["code"] == "not_found"
    assert error["request_id"] == "trace-404"
    assert response["X-Request-ID"] == "trace-404"


@pytest.mark.django_db
def test_admin_responses_carry_the_request_id(client):
    response = client.get("/admin/login/")
    assert response.status_code == 200
    assert len(response["X-Request-ID"]) == 36


@pytest.mark.parametrize(
    "value",
    ["bad\r\nInjected: yes", "x" * 10_000, "spaces are not allowed", "", "ünïcode"],
)
def test_malformed_request_ids_are_replaced_not_echoed(client, value):
    response = client.get("/healthz", HTTP_X_REQUEST_ID=value)
    returned = response["X-Request-ID"]
    assert returned != value
    assert len(returned) == 36  # a fresh UUID4
