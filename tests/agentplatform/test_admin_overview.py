"""The admin's front page: the overview of the day, its query bound, the grouped navigation, View site."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import numpy
import pytest
from django.contrib import admin
from django.core.cache import cache
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from agentplatform.admin_site import NAV_GROUPS, OpsAdminSite
from experiments.models import Experiment, ExperimentStatus, Variant
from experiments.stats.models import CALLS, ExperimentStatsState, ExperimentVariantMetric
from reports.models import JobOutcome, JobRun
from tests.traces.factories import save_traces, trace_row
from traces.models import SpanStatus

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_cached_fleet():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("day-admin", "d@example.com", "a-long-password-1")


@pytest.fixture
def staff_client(client, superuser):
    client.force_login(superuser)
    return client


def _experiment(key: str, *, users: tuple[int, int] | None = None, days: int = 3, status=ExperimentStatus.RUNNING):
    experiment = Experiment.objects.create(
        key=key,
        name=key,
        target_prompt_type=f"type-{key}",
        primary_metric="success_rate",
        user_percentage=Decimal("10"),
        status=status,
        started_at=timezone.now() - timedelta(days=days, hours=1),
    )
    control = Variant.objects.create(experiment=experiment, key="control", is_control=True, position=0)
    warm = Variant.objects.create(experiment=experiment, key="warm", position=1)
    if users is not None:
        ExperimentStatsState.objects.create(experiment=experiment, rolled_through=timezone.now())
        for variant, count in zip((control, warm), users, strict=True):
            ExperimentVariantMetric.objects.create(
                experiment=experiment, variant=variant, metric=CALLS, users=count, total=count * 2, sum_sq=count * 4
            )
    return experiment


def _label_moves(n: int, actor):
    from prompts.services import prompt_create, prompt_label_move, prompt_version_create

    prompt = prompt_create(actor=actor, key=f"moved-{n}")
    prompt_version_create(actor=actor, prompt=prompt, content="Hello v1")
    prompt_version_create(actor=actor, prompt=prompt, content="Hello v2")
    for index in range(n):
        prompt_label_move(actor=actor, prompt=prompt, label="production", version=1 + (index % 2) if index else 2)
    return prompt


def _job_runs(job: str, outcomes: list[str]):
    now = timezone.now()
    for index, outcome in enumerate(outcomes):
        JobRun.objects.create(job=job, outcome=outcome, started_at=now - timedelta(minutes=len(outcomes) - index))


def _traces(agent, durations: list[float], *, errors: int = 0, cost: str = "0.01"):
    now = timezone.now()
    rows = []
    for index, duration in enumerate(durations):
        start = now - timedelta(hours=2, seconds=index)
        row = trace_row(
            agent=agent,
            user_id=f"u{index}",
            start=start,
            end=start + timedelta(milliseconds=duration),
            cost=cost,
            status=SpanStatus.ERROR if index < errors else SpanStatus.OK,
        )
        rows.append(row)
    save_traces(rows)


def _make_data(size: int, superuser, django_user_model):
    for n in range(size):
        _experiment(f"exp-{n}", users=(10 * n, 10 * n + 1))
    _experiment("old-done", status=ExperimentStatus.COMPLETED)
    _label_moves(size, superuser)
    for n in range(size):
        _job_runs(f"job-{n % 5}", [JobOutcome.SUCCESS, JobOutcome.FAILED] * 2)
    agents = [django_user_model.objects.create_user(username=f"agent-{n}", role=Role.AGENT) for n in range(size)]
    for agent in agents:
        _traces(agent, [100.0 + k for k in range(5)], errors=1)


def test_the_index_is_the_overview_with_every_part_linking_to_its_page(staff_client, superuser, django_user_model):
    experiment = _experiment("greeting-tone", users=(37, 41), days=4)
    _experiment("finished", status=ExperimentStatus.COMPLETED)
    prompt = _label_moves(1, superuser)
    _job_runs("experiment_stats_rollup", [JobOutcome.SUCCESS, JobOutcome.FAILED, JobOutcome.FAILED])
    _job_runs("audit_seal", [JobOutcome.SUCCESS])
    agent = django_user_model.objects.create_user(username="support-bot", role=Role.AGENT)
    durations = [float(d) for d in range(100, 2100, 100)]  # 20 traces
    _traces(agent, durations, errors=5, cost="0.25")

    page = staff_client.get("/admin/")
    assert page.status_code == 200
    html = page.content.decode()
    # Running experiments: days running, users per variant from the rollup, links to change and stats.
    part = html[html.index('id="ov-experiments"') : html.index('id="ov-fleet"')]
    assert "greeting-tone" in part and "finished" not in part
    assert "control&nbsp;(control): 37" in part and "warm: 41" in part
    assert "<td>4</td>" in part
    assert reverse("admin:experiments_experiment_stats", args=[experiment.pk]) in part
    assert reverse("admin:experiments_experiment_change", args=[experiment.pk]) in part
    # The fleet: runs, failure rate, p95 equal to an independent computation, cost.
    fleet = page.context["fleet"]
    assert fleet["runs"] == 20 and fleet["failures"] == 5
    assert fleet["failure_rate"] == pytest.approx(0.25)
    assert fleet["cost"] == pytest.approx(5.0)
    (row,) = fleet["agents"]
    assert row["agent"] == "support-bot"
    assert row["p95_ms"] == pytest.approx(float(numpy.percentile(durations, 95)), rel=1e-6)
    assert row["p95_display"] == f"{numpy.percentile(durations, 95) / 1000:.3g} s"
    assert "25.0&nbsp;%" in html
    # Each agent's row leads to its traces (the list's agent filter), not to an error page.
    link = f"/admin/traces/trace/?agent={agent.pk}"
    assert link in html
    listing = staff_client.get(link)
    assert listing.status_code == 200 and listing.context["cl"].result_count == 20
    # Jobs: the failing one first, its last run's outcome, its failures in the window, a filtered link.
    jobs = page.context["jobs"]["items"]
    assert jobs[0]["job"] == "experiment_stats_rollup" and jobs[0]["failures"] == 2 and jobs[0]["runs"] == 3
    assert jobs[0]["last_run"].outcome == JobOutcome.FAILED
    assert "/admin/reports/jobrun/?job=experiment_stats_rollup" in html
    assert staff_client.get("/admin/reports/jobrun/?job=experiment_stats_rollup").context["cl"].result_count == 3
    running = staff_client.get("/admin/experiments/experiment/?status__exact=running")
    assert running.status_code == 200 and running.context["cl"].result_count == 1
    seal = next(job for job in jobs if job["job"] == "audit_seal")
    assert seal["last_run"].outcome == JobOutcome.SUCCESS and seal["failures"] == 0
    # Prompt label moves, linking to the prompt.
    assert reverse("admin:prompts_prompt_change", args=[prompt.pk]) in html
    assert "moved-1" in html
    # No breaker open, no alerts app: empty states that say so.
    assert "Every breaker is closed." in html
    assert "Alert rules are not part of this installation yet" in html
    assert reverse("admin:monitoring_dashboard") in html


def test_a_job_without_a_run_today_shows_its_last_run_of_the_week(staff_client):
    now = timezone.now()
    weekly = JobRun.objects.create(
        job="creator_analytics", outcome=JobOutcome.SUCCESS, started_at=now - timedelta(days=6)
    )
    JobRun.objects.create(job="daily_report", outcome=JobOutcome.FAILED, started_at=now - timedelta(days=9))
    JobRun.objects.create(job="daily_report", outcome=JobOutcome.FAILED, started_at=now - timedelta(hours=30))
    JobRun.objects.create(job="audit_export", outcome=JobOutcome.FAILED, started_at=now - timedelta(days=12))
    jobs = {job["job"]: job for job in staff_client.get("/admin/").context["jobs"]["items"]}
    assert jobs["creator_analytics"]["last_run"] == weekly and jobs["creator_analytics"]["runs"] == 0
    # Failures count over the last 24 h only; the last run over 8 days.
    assert jobs["daily_report"]["failures"] == 0
    assert jobs["daily_report"]["last_run"].started_at == now - timedelta(hours=30)
    assert jobs["audit_export"]["last_run"] is None


def test_empty_installation_says_what_is_missing(staff_client):
    html = staff_client.get("/admin/").content.decode()
    assert "No experiment is running." in html
    assert "No traces in the last 24 h." in html
    assert "No label moved in the last 7 days." in html


def test_an_open_breaker_is_listed_with_a_link_to_its_history(staff_client, settings):
    from agentplatform.breakers import STATE_OPEN, get_breaker

    settings.CIRCUIT_BREAKERS = {"default": {}, "overview-test-llm": {"fail_max": 1}}
    breaker = get_breaker("overview-test-llm")
    breaker.reset()
    try:
        with pytest.raises(RuntimeError):
            breaker.call(lambda: (_ for _ in ()).throw(RuntimeError("down")))
        assert breaker.state == STATE_OPEN
        html = staff_client.get("/admin/").content.decode()
        part = html[html.index('id="ov-breakers"') : html.index('id="ov-alerts"')]
        assert "overview-test-llm" in part and "open" in part
        assert "/admin/agentplatform/breakertransition/?breaker=overview-test-llm" in part
    finally:
        breaker.reset()


@pytest.mark.parametrize("size", [1, 25])
def test_the_overview_reads_a_bounded_number_of_queries(staff_client, superuser, django_user_model, size):
    """The same query count on a small and a larger data set (rows per part are capped, none per row)."""
    _make_data(size, superuser, django_user_model)
    from django.db import connection

    cache.clear()
    with CaptureQueriesContext(connection) as queries:
        assert staff_client.get("/admin/").status_code == 200
    # Session and user (2), experiments (3), label moves (1), jobs (3), fleet (the sort memory, the
    # aggregate, the agents' names: 3, and a savepoint around them inside the test's transaction: 2).
    assert len(queries) <= 14, [q["sql"][:120] for q in queries]
    # The fleet is kept a minute: the next load skips its queries.
    with CaptureQueriesContext(connection) as again:
        staff_client.get("/admin/")
    assert len(again) <= 9, [q["sql"][:120] for q in again]


def test_the_query_count_does_not_grow_with_the_data(staff_client, superuser, django_user_model):
    from django.db import connection

    counts = []
    for size in (2, 30):
        _make_data(size, superuser, django_user_model) if not counts else _make_more(size, superuser, django_user_model)
        cache.clear()
        with CaptureQueriesContext(connection) as queries:
            staff_client.get("/admin/")
        counts.append(len(queries))
    assert counts[0] == counts[1]
    assert len(staff_client.get("/admin/").context["experiments"]["items"]) == 20  # capped


def _make_more(size, superuser, django_user_model):
    for n in range(size):
        _experiment(f"more-{n}", users=(n, n))
    for n in range(size):
        _job_runs(f"job-{n % 7}", [JobOutcome.FAILED])
    agents = [django_user_model.objects.create_user(username=f"more-agent-{n}", role=Role.AGENT) for n in range(size)]
    for agent in agents:
        _traces(agent, [50.0, 60.0])


def test_parts_are_shown_by_permission(client, django_user_model):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user(username="viewer", password="x-password-123", is_staff=True)
    user.groups.clear()  # no role's permissions: only the one below
    user.user_permissions.set([Permission.objects.get(codename="view_jobrun")])
    user = django_user_model.objects.get(pk=user.pk)
    client.force_login(user)
    page = client.get("/admin/")
    assert page.status_code == 200
    assert page.context["show_jobs"] and not page.context["show_experiments"] and not page.context["show_fleet"]
    html = page.content.decode()
    assert 'id="ov-jobs"' in html and 'id="ov-experiments"' not in html and 'id="ov-fleet"' not in html
    assert [group["name"] for group in page.context["app_list"]] == ["Operations"]


def test_navigation_is_grouped_by_task_with_library_internals_under_advanced(staff_client):
    page = staff_client.get("/admin/")
    groups = {group["name"]: [m["admin_url"] for m in group["models"]] for group in page.context["app_list"]}
    assert list(groups) == [name for name, _ in NAV_GROUPS if name in groups]
    assert list(groups)[:7] == [
        "Experiments & prompts",
        "Agents & traces",
        "Quality",
        "Audit",
        "Operations",
        "Access",
        "Advanced",
    ]
    assert "Other" not in groups  # every registered model has its group
    advanced = " ".join(groups["Advanced"])
    for internal in (
        "token_blacklist/outstandingtoken",
        "django_celery_beat/clockedschedule",
        "django_celery_beat/solarschedule",
    ):
        assert internal in advanced
    assert "/admin/experiments/experiment/" in groups["Experiments & prompts"]
    assert "/admin/traces/trace/" in groups["Agents & traces"]
    assert reverse("admin:monitoring_dashboard") == groups["Operations"][0]
    # The dashboard is the page to read; the raw per-minute rows are an internal.
    assert "/admin/monitoring/operationminute/" not in groups["Operations"]
    assert "/admin/monitoring/operationminute/" in groups["Advanced"]
    # Every registered model's list is reachable from the navigation, exactly once.
    urls = [url for group in groups.values() for url in group]
    assert len(urls) == len(set(urls))
    registered = {f"/admin/{m._meta.app_label}/{m._meta.model_name}/" for m in admin.site._registry}
    assert registered <= set(urls)
    html = page.content.decode()
    assert 'id="nav-advanced"' in html and 'id="nav-experiments-prompts"' in html


def test_app_index_pages_and_model_urls_still_work(staff_client):
    assert staff_client.get("/admin/experiments/").status_code == 200
    assert staff_client.get("/admin/django_celery_beat/").status_code == 200
    assert staff_client.get("/admin/experiments/experiment/").status_code == 200
    app = staff_client.get("/admin/experiments/").context["app_list"]
    assert [a["app_label"] for a in app] == ["experiments"]


def test_view_site_leads_to_the_overview_and_the_site_has_its_title_and_favicon(staff_client):
    assert isinstance(admin.site, OpsAdminSite)
    html = staff_client.get("/admin/experiments/experiment/").content.decode()
    view_site = re.search(r'<a href="([^"]+)">View site</a>', html)
    assert view_site and view_site.group(1) == "/admin/"
    assert staff_client.get(view_site.group(1)).status_code == 200
    assert "<title>Today | Agent Ops</title>" in staff_client.get("/admin/").content.decode()
    assert "Agent Ops Platform" in html
    assert re.search(r'<link rel="icon" type="image/svg\+xml" href="[^"]*favicon[^"]*\.svg"', html)
    # No inline style or script (the strict CSP).
    overview = staff_client.get("/admin/").content.decode()
    assert " style=" not in overview and "<style" not in overview
    assert not re.search(r"<script(?![^>]*\bsrc=)", overview)


def test_anonymous_users_are_sent_to_log_in(client):
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


_SQLITE_SCRIPT = """
import json, django
django.setup()
from datetime import timedelta
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import setup_test_environment
from django.utils import timezone
setup_test_environment()  # the response's template context
call_command("migrate", verbosity=0)
assert connection.vendor == "sqlite"
from accounts.models import User
from tests.traces.factories import save_traces, trace_row
admin = User.objects.create_superuser("sqlite-admin", "s@example.com", "a-long-password-1")
agent = User.objects.create_user(username="sqlite-agent", role="agent")
now = timezone.now()
save_traces([trace_row(agent=agent, user_id="u", start=now - timedelta(hours=1, seconds=n),
                       end=now - timedelta(hours=1, seconds=n) + timedelta(milliseconds=100 * (n + 1)),
                       cost="0.5", status="error" if n == 0 else "ok") for n in range(10)])
client = Client()
client.force_login(admin)
page = client.get("/admin/")
fleet = page.context["fleet"]
print(json.dumps({"status": page.status_code, "runs": fleet["runs"], "failures": fleet["failures"],
                  "p95": fleet["agents"][0]["p95_ms"], "cost": fleet["cost"]}))
"""


def test_the_overview_on_sqlite_the_embedded_mode(tmp_path):
    """``make run``'s database has no percentile_cont: the fleet's p95 comes from numpy there."""
    import json

    from tests.conftest import run_python

    result = run_python(
        _SQLITE_SCRIPT,
        env={
            "DJANGO_SETTINGS_MODULE": "agentplatform.settings",
            "DJANGO_ENV": "test",
            "DATABASE_URL": "",
            "REDIS_URL": "",
            "CELERY_BROKER_URL": "memory://",
            "VAR_DIR": str(tmp_path),
            "SQLITE_PATH": str(tmp_path / "embedded.sqlite3"),
        },
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["status"] == 200
    assert (outcome["runs"], outcome["failures"]) == (10, 1)
    assert outcome["p95"] == pytest.approx(float(numpy.percentile([100.0 * (n + 1) for n in range(10)], 95)))
    assert outcome["cost"] == pytest.approx(5.0)
