from tests.conftest import PRODUCTION_ENV, run_manage


def test_check_deploy_is_clean_with_production_like_settings():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_fails_when_debug_is_on_in_production():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env={**PRODUCTION_ENV, "DEBUG": "1"})
    assert result.returncode != 0
    assert "agentplatform.E001" in result.stderr + result.stdout


def test_schema_generates_without_warnings():
    result = run_manage(
        "spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null", env={"DJANGO_ENV": "test"}
    )
    assert result.returncode == 0, result.stderr
