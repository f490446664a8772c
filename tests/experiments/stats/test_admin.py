"""Admin: the stats page with its charts, the exports and the sample-size calculator."""

from __future__ import annotations

import csv
import io
import json

import pytest
import time_machine
from django.urls import reverse

from accounts.models import Role
from experiments.models import Exposure, Variant
from experiments.stats.power import users_needed_for_mean, users_needed_for_rate

from ..conftest import make_user, strip_permission
from . import datasets
from .conftest import DAY0, load_dataset

pytestmark = pytest.mark.django_db
NOW = DAY0.replace(day=3)


@pytest.fixture
def staff_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def experiment():
    return load_dataset(datasets.guardrail_harm(), key="tone")


@time_machine.travel(NOW, tick=False)
def test_stats_page_shows_srm_decision_and_both_charts(staff_client, experiment):
    response = staff_client.get(reverse("admin:experiments_experiment_stats", args=[experiment.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert page.index('id="srm"') < page.index('id="decision"') < page.index('class="forest-plot"')
    # One consistent sentence in amber: never "SHIP control" above "Roll back to control".
    assert 'class="stats-banner warn" id="decision" data-state="keep_control"' in page
    assert "<strong>Keep control: b is worse on response_time_ms (+" in page
    assert "SHIP" not in page and "Roll back" not in page
    assert "guardrail response_time_ms" in page
    assert page.count('class="forest-row"') == 2  # success_rate and response_time_ms for b
    assert 'class="cumulative-chart"' in page
    assert page.count("<polyline") == 2  # one line per variant
    assert "<script" not in page.split('id="content-main"')[1]


@time_machine.travel(NOW, tick=False)
def test_stats_page_flags_a_sample_ratio_mismatch(staff_client):
    experiment = load_dataset(datasets.clear_win(), key="srm")
    # 1,500 users per arm were exposed; losing 300 control exposures is a broken exposure logger.
    control = Variant.objects.get(experiment=experiment, key="control")
    Exposure.objects.filter(
        pk__in=Exposure.objects.filter(experiment=experiment, variant=control).values("pk")[:300]
    ).delete()
    page = staff_client.get(reverse("admin:experiments_experiment_stats", args=[experiment.pk])).content.decode()
    assert "MISMATCH" in page
    assert 'class="stats-banner bad" id="decision" data-state="srm"' in page
    assert "<strong>Invalid: sample ratio mismatch" in page


def test_a_just_started_experiment_reads_collecting_data_in_a_neutral_colour(staff_client, settings):
    settings.EXPERIMENT_STATS_MIN_USERS_PER_VARIANT = 1470
    data = datasets.clear_win()
    data.calls = [c for c in data.calls if int(c["user_id"].rsplit("-u", 1)[1]) < 37]
    experiment = load_dataset(data, key="just-started")
    page = staff_client.get(reverse("admin:experiments_experiment_stats", args=[experiment.pk])).content.decode()
    assert 'class="stats-banner neutral" id="decision" data-state="collecting_data"' in page
    assert "Collecting data — 37 of " in page
    assert "INVALID" not in page


def test_change_page_links_to_the_stats(staff_client, experiment):
    page = staff_client.get(reverse("admin:experiments_experiment_change", args=[experiment.pk])).content.decode()
    assert reverse("admin:experiments_experiment_stats", args=[experiment.pk]) in page


@time_machine.travel(NOW, tick=False)
def test_csv_export_has_variants_comparisons_and_decision(staff_client, experiment):
    response = staff_client.get(reverse("admin:experiments_experiment_stats_csv", args=[experiment.pk]))
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="tone-stats.csv"'
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    kinds = [row[0] for row in rows[1:]]
    assert rows[0][:3] == ["row", "variant", "metric"]
    assert kinds.count("comparison") == 2
    assert kinds[-1] == "decision"
    diff = rows[kinds.index("comparison") + 1][rows[0].index("diff")]
    float(diff)  # numbers stay numbers, even negative ones


@time_machine.travel(NOW, tick=False)
def test_json_export_is_the_api_body(staff_client, analyst_client, experiment):
    exported = json.loads(
        staff_client.get(reverse("admin:experiments_experiment_stats_json", args=[experiment.pk])).content
    )
    api = analyst_client.get("/api/v1/experiments/tone/stats").json()
    assert exported["decision"] == api["decision"]
    assert [c["p_value"] for c in exported["comparisons"]] == pytest.approx([c["p_value"] for c in api["comparisons"]])


def test_exports_need_the_export_permission(client, experiment):
    viewer = strip_permission(make_user(Role.OPERATOR, "no-export"), "export_experiment")
    client.force_login(viewer)
    response = client.get(reverse("admin:experiments_experiment_stats_csv", args=[experiment.pk]))
    assert response.status_code == 403


def test_exports_are_audited(staff_client, experiment):
    from audit.models import AuditEvent

    staff_client.get(reverse("admin:experiments_experiment_stats_json", args=[experiment.pk]))
    event = AuditEvent.objects.get(action="experiment.stats_exported")
    assert event.resource_id == "tone"
    assert event.details == {"format": "json"}


def test_sample_size_calculator_for_a_mean(staff_client):
    url = reverse("admin:experiments_experiment_sample_size")
    response = staff_client.get(
        url,
        {"kind": "mean", "baseline_mean": 800, "baseline_std": 240, "relative_mde": 0.05, "alpha": 0.05, "power": 0.8},
    )
    expected = users_needed_for_mean(baseline_mean=800, baseline_std=240, relative_mde=0.05)
    assert f"<b>{expected}</b> users per variant" in response.content.decode()


def test_sample_size_calculator_for_a_rate(staff_client):
    url = reverse("admin:experiments_experiment_sample_size")
    response = staff_client.get(
        url, {"kind": "rate", "baseline_rate": 0.1, "relative_mde": 0.1, "alpha": 0.05, "power": 0.8}
    )
    expected = users_needed_for_rate(baseline_rate=0.1, relative_mde=0.1)
    assert f"<b>{expected}</b> users per variant" in response.content.decode()


def test_sample_size_calculator_explains_missing_inputs(staff_client):
    response = staff_client.get(
        reverse("admin:experiments_experiment_sample_size"),
        {"kind": "mean", "relative_mde": 0.05, "alpha": 0.05, "power": 0.8},
    )
    page = response.content.decode()
    assert "Required for a mean." in page
    assert 'id="sample-size-result"' not in page
