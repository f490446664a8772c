"""A starting price table for common models (docs/traces.md, "Cost": where the figures come from).

USD per million tokens as the providers' public price pages listed them for standard (not batch,
not priority) requests, prompts under 200k tokens where the price steps up past it. Blank provider:
the model names are distinctive, and the same model reached through another provider name (an
older ``gen_ai.system`` value, a cloud reseller) is priced alike until a provider-specific row is
added. Reasoning tokens are billed as output by these providers (blank reasoning price).
"""

from datetime import UTC, datetime
from decimal import Decimal

from django.db import migrations

SEED_NOTE = "seed: a starting point — check against the provider's price page"
VALID_FROM = datetime(2025, 1, 1, tzinfo=UTC)

# (model or glob, input, cached input, cache write, output); None: priced as plain input.
PRICES = [
    # OpenAI (openai.com/api/pricing): the alias and its dated snapshots (gpt-4.1-2025-04-14).
    ("gpt-4.1", "2.00", "0.50", None, "8.00"),
    ("gpt-4.1-20*", "2.00", "0.50", None, "8.00"),
    ("gpt-4.1-mini", "0.40", "0.10", None, "1.60"),
    ("gpt-4.1-mini-20*", "0.40", "0.10", None, "1.60"),
    ("gpt-4.1-nano", "0.10", "0.025", None, "0.40"),
    ("gpt-4.1-nano-20*", "0.10", "0.025", None, "0.40"),
    ("gpt-4o", "2.50", "1.25", None, "10.00"),
    ("gpt-4o-20*", "2.50", "1.25", None, "10.00"),
    ("gpt-4o-mini", "0.15", "0.075", None, "0.60"),
    ("gpt-4o-mini-20*", "0.15", "0.075", None, "0.60"),
    ("o3", "2.00", "0.50", None, "8.00"),
    ("o3-20*", "2.00", "0.50", None, "8.00"),
    ("o4-mini", "1.10", "0.275", None, "4.40"),
    ("o4-mini-20*", "1.10", "0.275", None, "4.40"),
    ("text-embedding-3-small", "0.02", None, None, "0"),
    ("text-embedding-3-large", "0.13", None, None, "0"),
    # Anthropic (anthropic.com/pricing, docs.anthropic.com "Pricing"): cache writes are the
    # 5-minute ones (1.25 x input), cache reads 0.1 x input. Ids carry dates
    # (claude-sonnet-4-20250514) or minor versions (claude-opus-4-1, claude-haiku-4-5).
    ("claude-opus-4*", "15.00", "1.50", "18.75", "75.00"),
    ("claude-opus-4-1*", "15.00", "1.50", "18.75", "75.00"),
    ("claude-opus-4-5*", "5.00", "0.50", "6.25", "25.00"),
    ("claude-sonnet-4*", "3.00", "0.30", "3.75", "15.00"),
    ("claude-haiku-4-5*", "1.00", "0.10", "1.25", "5.00"),
    # Google (ai.google.dev/gemini-api/docs/pricing): paid tier, text input, context-cache reads.
    ("gemini-2.5-pro*", "1.25", "0.125", None, "10.00"),
    ("gemini-2.5-flash*", "0.30", "0.03", None, "2.50"),
    ("gemini-2.5-flash-lite*", "0.10", "0.01", None, "0.40"),
]


def _decimal(value):
    return None if value is None else Decimal(value)


def seed(apps, schema_editor):
    ModelPrice = apps.get_model("traces", "ModelPrice")
    for model, input_price, cached, cache_write, output in PRICES:
        ModelPrice.objects.get_or_create(
            provider="",
            model=model,
            valid_from=VALID_FROM,
            defaults={
                "input_per_million": _decimal(input_price),
                "cached_input_per_million": _decimal(cached),
                "cache_write_per_million": _decimal(cache_write),
                "output_per_million": _decimal(output),
                "currency": "USD",
                "note": SEED_NOTE,
            },
        )


def unseed(apps, schema_editor):
    ModelPrice = apps.get_model("traces", "ModelPrice")
    ModelPrice.objects.filter(
        provider="", model__in=[row[0] for row in PRICES], valid_from=VALID_FROM, note=SEED_NOTE
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("traces", "0001_initial")]

    operations = [migrations.RunPython(seed, unseed)]
