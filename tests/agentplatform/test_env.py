import pytest
from django.core.exceptions import ImproperlyConfigured

from agentplatform.env import Env, check_secrets, parse_rate
from tests.conftest import PRODUCTION_ENV, run_manage


def test_bool_accepts_common_spellings():
    env = Env({"A": "yes", "B": "0", "C": "On"})
    assert env.bool("A") is True
    assert env.bool("B") is False
    assert env.bool("C") is True


def test_bool_rejects_garbage_naming_the_variable():
    with pytest.raises(ImproperlyConfigured, match="DEBUG='maybe' is not a boolean"):
        Env({"DEBUG": "maybe"}).bool("DEBUG")


def test_int_enforces_bounds():
    env = Env({"N": "11"})
    with pytest.raises(ImproperlyConfigured, match="above the maximum 10"):
        env.int("N", maximum=10)
    with pytest.raises(ImproperlyConfigured, match="not an integer"):
        Env({"N": "ten"}).int("N")


def test_missing_required_variable_is_named():
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY is required"):
        Env({}).str("SECRET_KEY")


def test_list_splits_and_trims():
    assert Env({"H": " a.example , b.example,,"}).list("H") == ["a.example", "b.example"]


@pytest.mark.parametrize("rate", ["6000/m", "10/5m", "1/s", "100/d"])
def test_valid_rates(rate):
    assert parse_rate(rate) == rate


@pytest.mark.parametrize("rate", ["6000", "0/m", "10/0m", "ten/m", "5/w", "-1/m"])
def test_invalid_rates_are_refused(rate):
    with pytest.raises(ImproperlyConfigured, match="is not a rate"):
        parse_rate(rate, name="RATE_LIMIT_X")


def test_float_rejects_non_finite():
    with pytest.raises(ImproperlyConfigured, match="finite"):
        Env({"F": "nan"}).float("F")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"SECRET_KEY": ""}, "SECRET_KEY is required"),
        ({"DEBUG": "perhaps"}, "DEBUG='perhaps' is not a boolean"),
        ({"RATE_LIMIT_PROMPTS_RESOLVE": "fast"}, "RATE_LIMIT_PROMPTS_RESOLVE='fast' is not a rate"),
        ({"TRUSTED_PROXY_COUNT": "-1"}, "TRUSTED_PROXY_COUNT=-1 is below the minimum 0"),
        ({"DJANGO_ENV": "staging"}, "DJANGO_ENV='staging' must be one of"),
        ({"DATABASE_URL": ""}, "DATABASE_URL is required"),
        ({"ALLOWED_HOSTS": ""}, "ALLOWED_HOSTS is required"),
    ],
)
def test_bad_settings_stop_start_up_with_a_clear_message(overrides, message):
    result = run_manage("check", env={**PRODUCTION_ENV, **overrides})
    assert result.returncode != 0
    assert message in result.stderr


def test_check_secrets_accepts_distinct_generated_values():
    import secrets

    check_secrets({"A": secrets.token_urlsafe(50), "B": secrets.token_urlsafe(50), "C": ""})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"A": "x" * 40 + "Change-Me"}, "A contains the placeholder 'change-me'"),
        ({"A": "k3Y" * 10}, "A is 30 characters long; at least 32"),
        ({"A": "0123456780" * 4}, "A has only 9 distinct characters; at least 10"),
        ({"A": "Qw8-" + "abcdefghij" * 4, "B": "Qw8-" + "abcdefghij" * 4}, "B must differ from A"),
    ],
    ids=["placeholder", "short", "repetitive", "shared"],
)
def test_check_secrets_names_the_weak_variable(values, message):
    with pytest.raises(ImproperlyConfigured, match=message) as raised:
        check_secrets(values)
    assert list(values.values())[-1] not in str(raised.value)
