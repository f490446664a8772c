"""Writes of the price table: each with ``actor=`` and its audit row in the same transaction.

The API and the admin both call these. A price is unique by (provider, model, valid_from): a
second one is a conflict (409), never a silent overwrite. Changing a price does not touch the
spans already priced; "reprice spans since <date>" (``traces.reprice``) does.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction

from agentplatform.errors import Conflict
from audit.services import audit_log
from traces.models import ModelPrice

RESOURCE_TYPE = "model_price"
PRICE_FIELDS = (
    "provider",
    "model",
    "input_per_million",
    "cached_input_per_million",
    "cache_write_per_million",
    "output_per_million",
    "reasoning_per_million",
    "currency",
    "valid_from",
    "note",
)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _snapshot(price: ModelPrice) -> dict[str, Any]:
    return {field: _jsonable(getattr(price, field)) for field in PRICE_FIELDS}


def _taken(*, provider: str, model: str, valid_from, exclude: int | None = None) -> bool:
    prices = ModelPrice.objects.filter(provider=provider, model=model, valid_from=valid_from)
    if exclude is not None:
        prices = prices.exclude(pk=exclude)
    return prices.exists()


def _conflict(data: Mapping[str, Any]) -> Conflict:
    return Conflict(
        "A price for this provider and model from this date exists already; change that one.",
        details={
            "provider": data.get("provider", ""),
            "model": data.get("model"),
            "valid_from": str(data.get("valid_from")),
        },
    )


def model_price_create(*, actor, data: Mapping[str, Any], request=None) -> ModelPrice:
    """Adds a price (validated ``data``); a (provider, model, valid_from) already taken is a Conflict."""
    fields = {field: data[field] for field in PRICE_FIELDS if field in data}
    fields.setdefault("provider", "")
    try:
        with transaction.atomic():
            if _taken(provider=fields["provider"], model=fields["model"], valid_from=fields["valid_from"]):
                raise _conflict(fields)
            price = ModelPrice.objects.create(**fields)
            audit_log(
                actor=actor,
                action="model_price.created",
                resource_type=RESOURCE_TYPE,
                resource_id=price.pk,
                details=_snapshot(price),
                request=request,
            )
    except IntegrityError:  # created concurrently between the check and the insert
        raise _conflict(fields) from None
    return price


def model_price_update(*, actor, price: ModelPrice, data: Mapping[str, Any], request=None) -> ModelPrice:
    """Changes a price's fields to ``data``'s; audited with the fields' values before and after."""
    try:
        with transaction.atomic():
            price = ModelPrice.objects.select_for_update().get(pk=price.pk)
            before = _snapshot(price)
            for field in PRICE_FIELDS:
                if field in data:
                    setattr(price, field, data[field])
            if _taken(provider=price.provider, model=price.model, valid_from=price.valid_from, exclude=price.pk):
                raise _conflict(_snapshot(price))
            price.save()
            after = _snapshot(price)
            changed = {
                field: {"from": before[field], "to": after[field]}
                for field in PRICE_FIELDS
                if before[field] != after[field]
            }
            audit_log(
                actor=actor,
                action="model_price.changed",
                resource_type=RESOURCE_TYPE,
                resource_id=price.pk,
                details={"changed": changed, "price": after},
                request=request,
            )
    except IntegrityError:
        raise _conflict(data) from None
    return price


def model_price_delete(*, actor, price: ModelPrice, request=None) -> None:
    """Removes a price; spans it priced keep their cost until they are repriced."""
    with transaction.atomic():
        snapshot = _snapshot(price)
        price_id = price.pk
        price.delete()
        audit_log(
            actor=actor,
            action="model_price.deleted",
            resource_type=RESOURCE_TYPE,
            resource_id=price_id,
            details=snapshot,
            request=request,
        )
