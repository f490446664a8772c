"""``make run``'s first minutes: what it prints (a ready resolve call), where its files go (var/),
and the start-up noise it leaves out (SQLite's index warning, Celery's root warning, kombu's host)."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from tests.conftest import ROOT, run_python

EMBEDDED_ENV = {
    "DJANGO_SETTINGS_MODULE": "agentplatform.settings",
    "DJANGO_ENV": "development",
    "DATABASE_URL": "",
    "REDIS_URL": "",
}


def _run_module():
    spec = importlib.util.spec_from_file_location("make_run", Path(ROOT) / "scripts" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_embedded_mode_silences_only_sqlites_index_warning_and_names_a_broker_host(tmp_path):
    script = """
import io, json, django
django.setup()
from django.conf import settings
from django.core.management import call_command
out, err = io.StringIO(), io.StringIO()
call_command("check", databases=["default"], stdout=out, stderr=err)
print(json.dumps({"silenced": settings.SILENCED_SYSTEM_CHECKS,
                  "loggers": settings.LOGGING["loggers"], "broker": settings.CELERY_BROKER_URL,
                  "control": settings.CELERY_BROKER_TRANSPORT_OPTIONS["control_folder"],
                  "output": out.getvalue() + err.getvalue()}))
"""
    result = run_python(script, env={**EMBEDDED_ENV, "VAR_DIR": str(tmp_path)}, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["silenced"] == ["models.W040"]
    assert "W040" not in outcome["output"] and "1 silenced" in outcome["output"]
    # kombu warns "No hostname was supplied" for a URL without one, in each of the three processes.
    assert outcome["broker"] == "filesystem://localhost//"
    from kombu import Connection

    assert Connection(outcome["broker"]).hostname == "localhost"
    # The broker's broadcast files live under var/, not in a control/ folder of the working directory.
    assert Path(outcome["control"]).is_relative_to(tmp_path)
    assert "W040" not in result.stderr
    # The worker's per-task lines are quiet (the job runner logs each job's outcome).
    assert outcome["loggers"]["celery.app.trace"] == {"level": "WARNING"}
    assert outcome["loggers"]["celery.worker.strategy"] == {"level": "WARNING"}
    debug = run_python(script, env={**EMBEDDED_ENV, "VAR_DIR": str(tmp_path), "LOG_LEVEL": "DEBUG"}, timeout=120)
    assert "celery.app.trace" not in json.loads(debug.stdout.strip().splitlines()[-1])["loggers"]


def test_postgresql_keeps_every_system_check(settings):
    assert "models.W040" not in settings.SILENCED_SYSTEM_CHECKS


def test_make_run_hides_celerys_root_warning_unless_debug():
    run = _run_module()
    env = run.process_env({"PATH": "/usr/bin"})
    assert env["DJANGO_ENV"] == "development"
    warn = (
        "import warnings; from celery.exceptions import SecurityWarning; "
        'warnings.warn("You\'re running the worker with superuser privileges: this is absolutely not recommended!",'
        " SecurityWarning); warnings.warn('another warning', SecurityWarning)"
    )

    def stderr_with(environ):
        return subprocess.run(
            [sys.executable, "-c", warn], env=environ, capture_output=True, text=True, check=True, timeout=60
        ).stderr

    quiet = stderr_with(env)
    assert "superuser privileges" not in quiet
    assert "another warning" in quiet  # only that one warning is filtered
    loud = stderr_with(run.process_env({"PATH": "/usr/bin", "LOG_LEVEL": "debug"}))
    assert "superuser privileges" in loud
    # A filter the user set is kept.
    assert run.process_env({"PYTHONWARNINGS": "error"})["PYTHONWARNINGS"].startswith("error,")


@pytest.mark.django_db
def test_seed_demo_prints_a_resolve_call_that_works(client, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    out = StringIO()
    call_command("seed_demo", stdout=out)
    lines = [line for line in out.getvalue().splitlines() if line.startswith("Resolve the demo prompt: ")]
    assert len(lines) == 1, out.getvalue()
    words = shlex.split(lines[0].removeprefix("Resolve the demo prompt: "))
    assert words[0] == "curl"
    headers = dict(words[i + 1].split(": ", 1) for i, word in enumerate(words) if word == "-H")
    body = json.loads(words[words.index("-d") + 1])
    url = words[-1]
    assert re.fullmatch(r"http://127\.0\.0\.1:8000/api/v1/prompts/resolve", url)
    answer = client.post(
        url.removeprefix("http://127.0.0.1:8000"),
        data=json.dumps(body),
        content_type=headers["Content-Type"],
        HTTP_AUTHORIZATION=headers["Authorization"],
    )
    assert answer.status_code == 200, answer.content
    assert answer.json()["prompt"]["key"] == "support"
    assert answer.json()["experiment"] == "demo-greeting-tone"
