"""What a span costs: the model price table (``ModelPrice``) applied to its token counts.

**Which price.** A span is priced by its model (the response model, else the request model) and
provider at its start. Among the prices whose provider is the span's or blank and whose model is
the span's model or a glob matching it, the most specific rule wins — an exact name before a glob,
a longer glob before a shorter one, a named provider before a blank one — and within that rule the
price with the latest ``valid_from`` not after the span's start. No rule: the cost stays null and
the span counts as unpriced.

**Never a token twice.** As the GenAI conventions define the counts, cache reads and cache writes
are part of ``input_tokens`` and reasoning tokens part of ``output_tokens``. So::

    cost = ((input - cache_read - cache_write) x input_price
            + cache_read x cached_input_price        (input price when not set)
            + cache_write x cache_write_price         (input price when not set)
            + (output - reasoning) x output_price
            + reasoning x reasoning_price)            (output price when not set)
           / 1,000,000

A span that reports more cached or reasoning tokens than its input or output count (some older
instrumentations report them beside, not inside, the count) has its base count floored at zero.
"""

from __future__ import annotations

import fnmatch
from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from traces.models import ModelPrice

MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None

    @property
    def empty(self) -> bool:
        return self.input_tokens is None and self.output_tokens is None


def cost_of(price: ModelPrice, usage: Usage) -> Decimal:
    """The cost of ``usage`` at ``price`` (see the module's formula)."""
    input_tokens = usage.input_tokens or 0
    output_tokens = usage.output_tokens or 0
    cache_read = usage.cache_read_tokens or 0
    cache_write = usage.cache_write_tokens or 0
    reasoning = usage.reasoning_tokens or 0
    base_input = max(input_tokens - cache_read - cache_write, 0)
    base_output = max(output_tokens - reasoning, 0)
    input_price = price.input_per_million
    output_price = price.output_per_million
    total = (
        base_input * input_price
        + cache_read * (price.cached_input_per_million if price.cached_input_per_million is not None else input_price)
        + cache_write * (price.cache_write_per_million if price.cache_write_per_million is not None else input_price)
        + base_output * output_price
        + reasoning * (price.reasoning_per_million if price.reasoning_per_million is not None else output_price)
    )
    return (total / MILLION).quantize(Decimal("1e-10"))


@dataclass(slots=True)
class _Rule:
    provider: str
    pattern: str
    exact: bool
    starts: list[datetime]  # valid_from, ascending
    prices: list[ModelPrice]

    def specificity(self) -> tuple[int, int, int]:
        return (1 if self.exact else 0, len(self.pattern), 1 if self.provider else 0)

    def matches(self, provider: str, model: str) -> bool:
        if self.provider and self.provider != provider:
            return False
        return model == self.pattern if self.exact else fnmatch.fnmatchcase(model, self.pattern)

    def at(self, when: datetime) -> ModelPrice | None:
        index = bisect_right(self.starts, when)
        return self.prices[index - 1] if index else None


class PriceBook:
    """Every price, indexed for look-ups by (provider, model, time); load one per batch."""

    def __init__(self, prices: list[ModelPrice]):
        rules: dict[tuple[str, str], _Rule] = {}
        for price in sorted(prices, key=lambda p: p.valid_from):
            key = (price.provider, price.model)
            rule = rules.get(key)
            if rule is None:
                exact = not any(char in price.model for char in "*?[")
                rule = rules[key] = _Rule(price.provider, price.model, exact, [], [])
            rule.starts.append(price.valid_from)
            rule.prices.append(price)
        self._exact: dict[str, list[_Rule]] = {}
        self._globs: list[_Rule] = []
        for rule in sorted(rules.values(), key=_Rule.specificity, reverse=True):
            if rule.exact:
                self._exact.setdefault(rule.pattern, []).append(rule)
            else:
                self._globs.append(rule)
        self._memo: dict[tuple[str, str], list[_Rule]] = {}

    @classmethod
    def load(cls) -> PriceBook:
        return cls(list(ModelPrice.objects.all()))

    def _rules(self, provider: str, model: str) -> list[_Rule]:
        key = (provider, model)
        found = self._memo.get(key)
        if found is None:
            found = [rule for rule in self._exact.get(model, ()) if rule.matches(provider, model)]
            found += [rule for rule in self._globs if rule.matches(provider, model)]
            self._memo[key] = found
        return found

    def price_for(self, *, provider: str, model: str, when: datetime) -> ModelPrice | None:
        """The price of ``model`` by ``provider`` valid at ``when`` (None: unpriced)."""
        if not model:
            return None
        for rule in self._rules(provider, model):
            price = rule.at(when)
            if price is not None:
                return price
        return None

    def cost(self, *, provider: str, model: str, when: datetime, usage: Usage) -> Decimal | None:
        """The cost of ``usage`` (None when the span has no model, no counts or no price)."""
        if usage.empty:
            return None
        price = self.price_for(provider=provider, model=model, when=when)
        return None if price is None else cost_of(price, usage)
