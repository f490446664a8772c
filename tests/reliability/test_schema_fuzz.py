"""Schemathesis against /api/schema/: every operation, with the credentials of every role.

Runs in-process through Django's WSGI application (no server), with a fixed seed
(``derandomize``) and a bounded number of examples per operation so it stays a few seconds of
``make test``. ``make soak`` runs the same property with many more examples
(``SCHEMATHESIS_MAX_EXAMPLES``). What it holds: no answer is a 5xx; every answer's content type
and body conform to what the schema documents for that status code.

Random examples rarely fill optional query parameters, so the GET operations also get the cases
of schemathesis's coverage phase: for each query parameter in turn, the boundary values the
schema allows (positive) and values it forbids (negative: past a bound, outside an enum, a wrong
type, a required one missing, one given twice), every negative one answered with a 4xx.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.checks import content_type_conformance, not_a_server_error, response_schema_conformance
from schemathesis.specs.openapi.checks import negative_data_rejection

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "4"))
CHECKS = [not_a_server_error, content_type_conformance, response_schema_conformance]
ROLES = ("agent", "analyst", "operator", "admin")


def credentials_for(role: str, user_factory) -> dict[str, str]:
    """The Authorization header of a fresh caller in the role (Api-Key for agents, Bearer JWT for people)."""
    from accounts.services import api_key_create
    from accounts.tokens import token_pair_for

    user = user_factory(role=role, password=None)
    if role == "agent":
        _, raw_key = api_key_create(user=user, name="schemathesis")
        return {"Authorization": f"Api-Key {raw_key}"}
    return {"Authorization": f"Bearer {token_pair_for(user)['access']}"}


def fuzz_operation(operation, headers: dict[str, str], *, max_examples: int) -> None:
    @hypothesis_settings(
        max_examples=max_examples,
        derandomize=True,  # the fixed seed: the same examples on every run
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def run(case):
        case.call_and_validate(headers=headers, checks=CHECKS)

    run()


@pytest.fixture
def wsgi_app(db):
    """Django's WSGI application, keeping the test's database connection across requests.

    A real WSGI request closes the connection when it finishes; Django's test client stops that
    by disconnecting ``close_old_connections``, and so does this fixture (the test's transaction
    lives on that connection).
    """
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield get_wsgi_application()
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.mark.parametrize("role", ROLES)
def test_every_operation_answers_within_its_schema(role, wsgi_app, user_factory, settings):
    # Limits are the throttle's business (tests/agentplatform/test_ratelimit.py); here every
    # example must reach the view.
    settings.RATELIMIT_ENABLE = False
    schema = schemathesis.openapi.from_wsgi("/api/schema/", wsgi_app)
    headers = credentials_for(role, user_factory)
    failures = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        try:
            fuzz_operation(operation, headers, max_examples=MAX_EXAMPLES)
        except (Exception, BaseExceptionGroup) as exc:  # every operation's failure is collected, then reported together
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert operations >= 20
    assert not failures, "\n\n".join(failures)


def test_every_query_parameter_is_covered_at_its_bounds_and_refused_past_them(wsgi_app, user_factory, settings):
    settings.RATELIMIT_ENABLE = False
    schema = schemathesis.openapi.from_wsgi("/api/schema/", wsgi_app)
    schema.config.phases.coverage.generate_duplicate_query_parameters = True
    # The admin role reaches every view, so each case gets past the permission check to the query.
    headers = credentials_for("admin", user_factory)
    failures, covered = [], set()
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.method.upper() != "GET":
            continue
        generation = schema.config.generation_for(operation=operation, phase="coverage")
        for case in schema.iter_coverage_cases(
            operation, generation_modes=list(GenerationMode), generation_config=generation
        ):
            covered.update((operation.path, name) for name in case.query or {})
            try:
                case.call_and_validate(headers=headers, checks=[*CHECKS, negative_data_rejection])
            except (Exception, BaseExceptionGroup) as exc:  # collected, then reported together
                failures.append(f"GET {operation.path} query={case.query!r}: {exc}")
    assert {("/api/v1/reports/", "offset"), ("/api/v1/monitoring/summary", "until")} <= covered
    assert not failures, "\n\n".join(failures[:60])
