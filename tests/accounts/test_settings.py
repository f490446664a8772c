"""The JWT signing key is required in production and must not be SECRET_KEY."""

from __future__ import annotations

from tests.conftest import PRODUCTION_ENV, run_python

IMPORT_SETTINGS = "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='agentplatform.settings'; django.setup()"


def test_production_requires_a_jwt_signing_key():
    env = {key: value for key, value in PRODUCTION_ENV.items() if key != "JWT_SIGNING_KEY"}
    result = run_python(IMPORT_SETTINGS, env={**env, "JWT_SIGNING_KEY": ""})
    assert result.returncode != 0
    assert "JWT_SIGNING_KEY is required" in result.stderr


def test_production_refuses_secret_key_as_the_jwt_key():
    result = run_python(IMPORT_SETTINGS, env={**PRODUCTION_ENV, "JWT_SIGNING_KEY": PRODUCTION_ENV["SECRET_KEY"]})
    assert result.returncode != 0
    assert "differ from SECRET_KEY" in result.stderr
