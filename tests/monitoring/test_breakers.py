"""Breaker states and transitions from the cross-cutting layer show in /metrics and the dashboard."""

from __future__ import annotations

import pytest
from django.urls import reverse
from prometheus_client.parser import text_string_to_metric_families

from agentplatform import breakers
from monitoring.recorder import recorder
from tests.monitoring.conftest import make_user

# The transition is written by the breakers' own thread and connection: it must really commit.
pytestmark = pytest.mark.django_db(transaction=True)


def _fail() -> None:
    raise RuntimeError("upstream exploded")


@pytest.fixture
def opened_breaker(settings):
    settings.CIRCUIT_BREAKERS = {**settings.CIRCUIT_BREAKERS, "search": {"fail_max": 1, "reset_timeout": 600}}
    breaker = breakers.get_breaker("search")
    with pytest.raises(RuntimeError):
        breaker.call(_fail)
    breakers.flush_transitions()
    recorder.flush()
    yield breaker
    breaker.reset()
    breakers.flush_transitions()


def test_an_open_breaker_and_its_transition_count_are_in_metrics(client, opened_breaker):
    text = client.get("/metrics").content.decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("agentplatform_breaker_state", (("breaker", "search"), ("state", "open")))] == 1
    assert samples[("agentplatform_breaker_state", (("breaker", "search"), ("state", "closed")))] == 0
    assert samples[("agentplatform_breaker_transitions_total", (("breaker", "search"), ("to", "open")))] == 1


def test_the_dashboard_shows_breaker_states_and_recent_transitions(client, django_user_model, opened_breaker):
    client.force_login(make_user(django_user_model, "ops", "monitoring.view_metrics", is_staff=True))
    html = client.get(reverse("admin:monitoring_dashboard")).content.decode()
    assert '<td>search</td><td class="state-open">open</td>' in html
    assert "upstream exploded" in html  # the transition's last error
