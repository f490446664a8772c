"""The model price API: who may read and write, validation, conflicts, audit rows."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from audit.models import AuditEvent
from traces.models import ModelPrice
from traces.serializers import model_pattern_problem

pytestmark = pytest.mark.django_db
LIST = "/api/v1/model-prices"


def body(**changes) -> dict:
    return {
        "provider": "acme",
        "model": "acme-large-*",
        "input_per_million": "3.00",
        "cached_input_per_million": "0.30",
        "cache_write_per_million": "3.75",
        "output_per_million": "15",
        "currency": "USD",
        "valid_from": "2026-06-01T00:00:00Z",
        "note": "list price",
        **changes,
    }


def test_an_admin_creates_changes_and_deletes_a_price_each_audited(auth_client, django_capture_on_commit_callbacks):
    client = auth_client("admin")
    with django_capture_on_commit_callbacks(execute=True):
        created = client.post(LIST, body(), format="json")
    assert created.status_code == 201, created.content
    price_id = created.json()["id"]
    price = ModelPrice.objects.get(pk=price_id)
    assert (price.provider, price.model, price.input_per_million, price.reasoning_per_million) == (
        "acme",
        "acme-large-*",
        Decimal("3"),
        None,
    )
    with django_capture_on_commit_callbacks(execute=True):
        changed = client.put(f"{LIST}/{price_id}", {"output_per_million": "12.5"}, format="json")
    assert changed.status_code == 200, changed.content
    assert ModelPrice.objects.get(pk=price_id).output_per_million == Decimal("12.5")
    assert ModelPrice.objects.get(pk=price_id).input_per_million == Decimal("3")  # left out: kept
    with django_capture_on_commit_callbacks(execute=True):
        assert client.delete(f"{LIST}/{price_id}").status_code == 204
    assert not ModelPrice.objects.filter(pk=price_id).exists()
    events = list(
        AuditEvent.objects.filter(resource_type="model_price", resource_id=str(price_id)).order_by("occurred_at", "id")
    )
    assert [e.action for e in events] == ["model_price.created", "model_price.changed", "model_price.deleted"]
    assert events[0].actor_id == client.user.pk
    assert events[1].details["changed"] == {"output_per_million": {"from": "15.000000", "to": "12.500000"}}


def test_analysts_and_operators_read_prices_but_cannot_write(auth_client):
    price = ModelPrice.objects.create(
        model="acme-x", input_per_million=1, output_per_million=2, valid_from=datetime(2026, 1, 1, tzinfo=UTC)
    )
    for role in ("analyst", "operator"):
        client = auth_client(role)
        listing = client.get(LIST)
        assert listing.status_code == 200
        assert price.pk in [row["id"] for row in listing.json()["results"]]
        assert client.get(f"{LIST}/{price.pk}").json()["model"] == "acme-x"
        assert client.post(LIST, body(), format="json").status_code == 403
        assert client.put(f"{LIST}/{price.pk}", {"note": "x"}, format="json").status_code == 403
        assert client.delete(f"{LIST}/{price.pk}").status_code == 403


def test_agents_may_not_read_prices(auth_client):
    client = auth_client("agent")
    assert client.get(LIST).status_code == 403
    assert client.post(LIST, body(), format="json").status_code == 403


def test_the_seed_table_is_listed(auth_client):
    models = {row["model"] for row in auth_client("analyst").get(LIST, {"limit": 1000}).json()["results"]}
    assert {"gpt-4.1", "gpt-4o-mini", "o3", "claude-sonnet-4*", "gemini-2.5-pro*", "text-embedding-3-small"} <= models
    seeded = ModelPrice.objects.get(model="claude-sonnet-4*")
    assert seeded.note.startswith("seed: a starting point")
    assert seeded.cached_input_per_million == Decimal("0.3") and seeded.cache_write_per_million == Decimal("3.75")


def test_the_same_provider_model_and_start_is_a_409(auth_client):
    client = auth_client("admin")
    assert client.post(LIST, body(), format="json").status_code == 201
    again = client.post(LIST, body(input_per_million="4"), format="json")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"
    other = client.post(LIST, body(valid_from="2026-07-01T00:00:00Z"), format="json").json()["id"]
    moved = client.put(f"{LIST}/{other}", {"valid_from": "2026-06-01T00:00:00Z"}, format="json")
    assert moved.status_code == 409
    assert ModelPrice.objects.filter(model="acme-large-*").count() == 2


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"input_per_million": "-1"}, "input_per_million"),
        ({"output_per_million": "NaN"}, "output_per_million"),
        ({"cached_input_per_million": "Infinity"}, "cached_input_per_million"),
        ({"input_per_million": "1e30"}, "input_per_million"),
        ({"input_per_million": True}, "input_per_million"),
        ({"model": "gpt-4.1 "}, "model"),
        ({"model": "gpt-[4"}, "model"),
        ({"model": "gpt-]4"}, "model"),
        ({"model": "gpt-[]4"}, "model"),
        ({"model": "*"}, "model"),
        ({"model": ""}, "model"),
        ({"provider": "Open AI"}, "provider"),
        ({"currency": "usd"}, "currency"),
        ({"currency": "EURO"}, "currency"),
        ({"valid_from": "2026-06-01"}, "valid_from"),
        ({"valid_from": "2026-06-01T00:00:00"}, "valid_from"),
        ({"valid_from": 1234}, "valid_from"),
        ({"note": "x" * 301}, "note"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_invalid_prices_get_the_400_envelope(auth_client, changes, field):
    response = auth_client("admin").post(LIST, body(**changes), format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "validation_error"
    assert field in response.json()["error"]["details"]
    assert not ModelPrice.objects.filter(provider="acme").exists()


def test_a_body_that_is_not_an_object_is_refused(auth_client):
    response = auth_client("admin").post(LIST, ["x"], format="json")
    assert response.status_code == 400


def test_unknown_price_ids_are_404(auth_client):
    client = auth_client("admin")
    assert client.get(f"{LIST}/999999").status_code == 404
    assert client.put(f"{LIST}/999999", {"note": "x"}, format="json").status_code == 404
    assert client.delete(f"{LIST}/999999").status_code == 404


@pytest.mark.parametrize(
    "pattern, ok",
    [
        ("gpt-4.1", True),
        ("gpt-4.1*", True),
        ("claude-[so]*", True),
        ("models/gemini-2.5-pro", True),
        ("a[b", False),
        ("a]b", False),
        ("a[[b]]", False),
        ("??", False),
        ("x y", False),
    ],
)
def test_model_patterns(pattern, ok):
    assert (model_pattern_problem(pattern) is None) is ok
