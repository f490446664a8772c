"""Labels kept fresh in the background, the asyncio client, and the OpenTelemetry attributes."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.sdk.conftest import experiment_start, two_variants

pytestmark = [pytest.mark.django_db(transaction=True)]

REFRESH_SECONDS = 0.5


def wait_until(predicate, *, rounds: int = 40, pause: float = REFRESH_SECONDS / 2) -> bool:
    """Poll ``predicate`` for up to ``rounds * pause`` seconds (about 20 refresh intervals)."""
    for _ in range(rounds):
        if predicate():
            return True
        time.sleep(pause)
    return predicate()


@pytest.fixture
def registry(admin):
    from prompts import services as prompts

    support = prompts.prompt_create(actor=admin, key="support")
    prompts.prompt_version_create(
        actor=admin, prompt=support, content="v1 for {{name}}", labels=["production", "staging"]
    )
    prompts.prompt_version_create(actor=admin, prompt=support, content="v2 for {{name}}", config={"temperature": 0.2})
    return support


def test_a_moved_label_is_seen_by_the_client_after_a_refresh(platform, registry, admin, make_client):
    from prompts import services as prompts

    ops = make_client(refresh_interval=REFRESH_SECONDS)
    staging = ops.prompt("support", user_id="u-1", label="staging", variables={"name": "Ada"})
    production = ops.prompt("support", user_id="u-1")
    assert (staging.version, staging.label, staging.compiled, staging.source) == (1, "staging", "v1 for Ada", "label")
    assert (production.version, production.label, production.content) == (1, "production", "v1 for {{name}}")

    prompts.prompt_label_move(actor=admin, prompt=registry, label="staging", version=2)
    prompts.prompt_label_move(actor=admin, prompt=registry, label="production", version=2)
    assert wait_until(lambda: ops.prompt("support", user_id="u-1", label="staging").version == 2)
    assert wait_until(lambda: ops.prompt("support", user_id="u-1").version == 2)
    moved = ops.prompt("support", user_id="u-1", label="staging")
    assert (moved.content, dict(moved.config)) == ("v2 for {{name}}", {"temperature": 0.2})


def test_a_label_the_prompt_lacks_serves_the_default(platform, registry, make_client):
    ops = make_client()
    answer = ops.prompt("support", user_id="u-1", label="canary", default="Mine.")
    assert (answer.content, answer.source, answer.version) == ("Mine.", "default", None)
    assert ops.prompt("unknown-prompt", user_id="u-1", default="Mine.").source == "default"


def test_missing_variables_are_named_never_raised(platform, registry, make_client):
    ops = make_client()
    answer = ops.prompt("support", user_id="u-1", variables={})
    assert answer.compiled == "v1 for {{name}}" and answer.missing_variables == ("name",)


def test_the_async_client_resolves_and_delivers(platform, agent_api_key, user_factory):
    from agentops_client import AsyncAgentOps

    from audit.models import AuditEvent
    from experiments.models import Exposure, Result

    experiment_start(
        actor=user_factory(role="operator"),
        key="support-tone",
        prompt_type="support",
        user_percentage=100,
        variants=two_variants("support"),
    )

    async def agent() -> tuple:
        async with AsyncAgentOps(platform.url, agent_api_key, flush_interval=0.1) as ops:
            answer = await ops.prompt("support", user_id="async-user", variables={"name": "Ada"})
            result_id = await ops.result(answer, success=True, response_time_ms=812, tokens=430, quality_score=0.9)
            audit_id = await ops.audit("ticket.closed", resource=("ticket", "T-1"))
            await ops.metric("tool.search", duration_ms=120)
            delivered = await ops.flush(timeout=30)
            return answer, result_id, audit_id, delivered, ops.health()

    answer, result_id, audit_id, delivered, health = asyncio.run(agent())
    assert delivered and answer.source == "experiment" and answer.compiled.endswith("Ada.")
    result = Result.objects.get(event_id=result_id)
    assert (result.user_id, result.variant.key, result.tokens, result.quality_score) == (
        "async-user",
        answer.variant,
        430,
        0.9,
    )
    assert Exposure.objects.get(user_id="async-user").variant.key == answer.variant
    assert AuditEvent.objects.filter(event_id=audit_id, action="ticket.closed").count() == 1
    assert health["delivered"]["metrics"] == 1


def test_prompt_sets_the_experiment_attributes_on_the_current_span(platform, user_factory, make_client):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    experiment_start(
        actor=user_factory(role="operator"),
        key="support-tone",
        prompt_type="support",
        user_percentage=100,
        variants=two_variants("support"),
    )
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("agent")
    ops = make_client()
    with tracer.start_as_current_span("turn"):
        answer = ops.prompt("support", user_id="span-user")
    ops.prompt("support", user_id="no-span")  # no current span: nothing to set, nothing raised
    (span,) = exporter.get_finished_spans()
    assert span.attributes["agentops.experiment"] == "support-tone"
    assert span.attributes["agentops.variant"] == answer.variant
    assert span.attributes["agentops.prompt"] == "support"
    assert span.attributes["agentops.prompt_version"] == answer.version
    assert span.attributes["user.id"] == answer.user_id
    assert isinstance(answer.version, int)
