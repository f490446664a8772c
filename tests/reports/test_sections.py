"""Report sections against hand-computed numbers from seeded rows of each app.

Each test needs its app's models and skips (with the reason) on a branch where they have not
landed; on main, with every app merged, they all run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.apps import apps

from reports import sections
from reports.services import creator_analytics, daily_report

pytestmark = pytest.mark.django_db

START = datetime(2026, 11, 26, tzinfo=UTC)
END = START + timedelta(days=1)


def require(label: str):
    return apps.get_model(label)  # every app is installed: a missing model is a failure, not a skip


# --- audit ----------------------------------------------------------------------------------


def seed_audit_events():
    event = require("audit.AuditEvent")
    from django.contrib.auth import get_user_model

    users = {
        name: get_user_model().objects.create_user(username=name, role=role)
        for name, role in (("agent-a", "agent"), ("agent-b", "agent"), ("alice", "operator"))
    }
    rows = [
        # (actor_label, action, severity, success, hours after START)
        ("agent-a", "experiment.result_recorded", 20, True, 1),
        ("agent-a", "experiment.result_recorded", 20, True, 2),
        ("agent-a", "experiment.result_recorded", 40, False, 3),
        ("agent-a", "enrichment.context_fetched", 20, True, 4),
        ("agent-b", "enrichment.context_fetched", 30, False, 5),
        ("agent-b", "enrichment.context_fetched", 20, True, 6),
        ("alice", "experiment.started", 20, True, 7),
        ("alice", "experiment.started", 20, True, 30),  # the next day: not counted
    ]
    for actor_label, action, severity, success, hours in rows:
        event.objects.create(
            actor=users[actor_label],
            actor_label=actor_label,
            action=action,
            severity=severity,
            success=success,
            occurred_at=START + timedelta(hours=hours),
        )


def test_audit_section_counts_by_action_severity_and_actor():
    seed_audit_events()
    section = sections.section_audit(start=START, end=END)
    assert (section["events"], section["succeeded"]) == (7, 5)
    assert section["success_rate"] == round(5 / 7, 4)
    # Busiest first, ties by name.
    assert section["by_action"] == [
        {"action": "enrichment.context_fetched", "events": 3, "failed": 1},
        {"action": "experiment.result_recorded", "events": 3, "failed": 1},
        {"action": "experiment.started", "events": 1, "failed": 0},
    ]
    assert section["by_severity"] == {"info": 5, "error": 1, "warning": 1}
    assert section["by_actor"] == [
        {"actor": "agent-a", "events": 4},
        {"actor": "agent-b", "events": 2},
        {"actor": "alice", "events": 1},
    ]


def test_agents_section_counts_events_success_and_enrichment_calls():
    seed_audit_events()
    agents = sections.section_agents(start=START, end=END)["agents"]
    assert agents["agent-a"] == {
        "events": 4,
        "by_action": {"enrichment.context_fetched": 1, "experiment.result_recorded": 3},
        "success_rate": 0.75,
        "enrichment_calls": 1,
    }
    assert agents["agent-b"]["enrichment_calls"] == 2
    assert agents["agent-b"]["success_rate"] == 0.5
    assert "alice" not in agents  # people are not agents


# --- experiments ----------------------------------------------------------------------------


def seed_experiment():
    experiment_model = require("experiments.Experiment")
    variant_model = require("experiments.Variant")
    exposure_model = require("experiments.Exposure")
    result_model = require("experiments.Result")
    experiment = experiment_model.objects.create(
        key="tone", name="Tone", target_prompt_type="reply", primary_metric="success_rate", user_percentage=100
    )
    experiment_model.objects.filter(pk=experiment.pk).update(status="running")
    experiment_model.objects.create(
        key="draft-one", name="Draft", target_prompt_type="other", primary_metric="success_rate", user_percentage=50
    )
    control = variant_model.objects.create(experiment=experiment, key="control", content="A", is_control=True)
    friendly = variant_model.objects.create(experiment=experiment, key="friendly", content="B", position=1)
    exposures = [
        ("u1", control, START - timedelta(days=2)),  # exposed earlier, reports today
        ("u2", control, START + timedelta(hours=1)),
        ("u3", friendly, START + timedelta(hours=2)),
        ("u4", friendly, START + timedelta(hours=3)),
        ("u5", friendly, END + timedelta(hours=1)),  # tomorrow
    ]
    for user_id, variant, seen in exposures:
        exposure_model.objects.create(experiment=experiment, variant=variant, user_id=user_id, first_seen_at=seen)
    results = [
        # (user, variant, success, quality, feedback, hours after START)
        ("u1", control, True, 0.8, 1, 1),
        ("u1", control, False, 0.4, -1, 2),
        ("u2", control, True, 0.6, None, 3),
        ("u3", friendly, True, 0.9, 1, 4),
        ("u3", friendly, True, None, 1, 5),
        ("u4", friendly, None, 0.5, 0, 6),
        ("u4", friendly, False, 0.7, 0, -20),  # yesterday: not counted
    ]
    for index, (user_id, variant, success, quality, feedback, hours) in enumerate(results):
        result_model.objects.create(
            event_id=f"e{index}",
            experiment=experiment,
            variant=variant,
            user_id=user_id,
            occurred_at=START + timedelta(hours=hours),
            success=success,
            quality_score=quality,
            user_feedback=feedback,
        )
    return experiment


def test_experiments_section_reports_running_experiments_per_variant():
    seed_experiment()
    section = sections.section_experiments(start=START, end=END)
    assert section["by_status"] == {"draft": 1, "running": 1}
    [tone] = section["running"]
    assert (tone["key"], tone["exposures_total"], tone["exposures_new"], tone["results"]) == ("tone", 5, 3, 6)
    assert tone["variants"]["control"] == {
        "exposures_total": 2,
        "exposures_new": 1,
        "results": 3,
        "mean_quality": 0.6,
        "success_rate": round(2 / 3, 4),
    }
    # u4's result without a success flag counts as a result, not in the success rate.
    assert tone["variants"]["friendly"] == {
        "exposures_total": 3,
        "exposures_new": 2,
        "results": 3,
        "mean_quality": 0.7,
        "success_rate": 1.0,
    }


def test_creators_section_aggregates_per_user_id():
    seed_experiment()
    section = sections.section_creators(start=START, end=END, limit=100)
    creators = section["creators"]
    assert set(creators) == {"u1", "u2", "u3", "u4"}
    assert creators["u1"] == {
        "results": 2,
        "success_rate": 0.5,
        "mean_quality": 0.6,
        "mean_feedback": 0.0,
        "experiments": ["tone"],
        "variants": ["tone:control"],
    }
    assert creators["u3"]["mean_feedback"] == 1.0
    assert creators["u4"]["success_rate"] is None  # its only result today has no success flag
    assert section["truncated"] is False


def test_creators_section_keeps_the_most_active_within_the_limit():
    seed_experiment()
    section = sections.section_creators(start=START, end=END, limit=2)
    assert list(section["creators"]) == ["u1", "u3"]
    assert section["truncated"] is True


# --- monitoring -----------------------------------------------------------------------------


def test_monitoring_section_reports_counts_error_rates_and_p95():
    # A whole UTC day is read from the rollup's day rows (monitoring.selectors.window_plan).
    day_model = require("monitoring.OperationDay")
    from monitoring.sketch import bucket_index

    fast, slow = str(bucket_index(20.0)), str(bucket_index(200.0))
    rows = [
        ("prompts.resolve", START, 100, 5, {fast: 90, slow: 10}),
        ("audit.write", START, 10, 0, {fast: 10}),
        ("audit.write", END, 999, 999, {slow: 999}),  # the next day
    ]
    for operation, day, count, errors, buckets in rows:
        day_model.objects.create(
            operation=operation, day=day, count=count, errors=errors, duration_sum_ms=count * 20.0, buckets=buckets
        )
    with time_machine.travel(END + timedelta(hours=2), tick=False):
        section = sections.section_monitoring(start=START, end=END)
    assert (section["operations_count"], section["errors"]) == (110, 5)
    assert section["error_rate"] == round(5 / 110, 4)
    resolve, write = section["operations"]
    assert (resolve["operation"], resolve["count"], resolve["error_rate"]) == ("prompts.resolve", 100, 0.05)
    assert resolve["p95_ms"] == pytest.approx(200, rel=0.02)
    assert write["p95_ms"] == pytest.approx(20, rel=0.02)


def test_breaker_openings_are_counted_per_breaker_for_the_day():
    transition = require("agentplatform.BreakerTransition")
    for breaker, to_state, hours in [
        ("enrichment.web", "open", 1),
        ("enrichment.web", "half-open", 2),
        ("enrichment.web", "open", 3),
        ("enrichment.search", "open", 4),
        ("enrichment.search", "open", 30),
    ]:
        transition.objects.create(breaker=breaker, to_state=to_state, at=START + timedelta(hours=hours))
    assert sections._breaker_openings(start=START, end=END) == {"enrichment.web": 2, "enrichment.search": 1}


# --- enrichment -----------------------------------------------------------------------------


def test_enrichment_section_lists_sources_with_documents_collected_that_day():
    source_model = require("enrichment.DataSource")
    document_model = require("enrichment.CollectedDocument")
    source = source_model.objects.create(name="news", url="https://example.com/feed", active=True)
    for index, hours in enumerate((1, 2, 30)):
        document_model.objects.create(
            source=source,
            url=f"https://example.com/{index}",
            text="t",
            content_hash=f"h{index}",
            fetched_at=START + timedelta(hours=hours),
        )
    section = sections.section_enrichment(start=START, end=END)
    [news] = [entry for entry in section["sources"] if entry["name"] == "news"]
    assert (news["active"], news["documents_collected"]) == (True, 2)
    assert "providers" in section


# --- whole reports --------------------------------------------------------------------------


def test_daily_report_assembles_every_installed_section():
    seed_audit_events()
    report = daily_report(day=START.date())
    audit = report.data["sections"]["audit"]
    assert (audit["events"], audit["succeeded"]) == (7, 5)
    assert set(report.data["sections"]) == {"audit", "experiments", "monitoring", "enrichment", "jobs"}


def test_creator_analytics_report_holds_creators_and_agents():
    seed_experiment()
    report = creator_analytics(start=START, end=END)
    assert report.data["sections"]["creators"]["creators"]["u2"]["results"] == 1
