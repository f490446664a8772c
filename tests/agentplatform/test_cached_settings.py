"""CachedSetting: computed once, recomputed after a change of a setting it was computed from."""

from __future__ import annotations

from django.conf import settings as django_settings

from agentplatform.cached_settings import CachedSetting


def test_the_value_is_computed_once_and_again_only_after_its_setting_changes(settings):
    calls = []

    def compute():
        calls.append(1)
        return django_settings.AUDIT_PAGE_SIZE * 2

    cached = CachedSetting(["AUDIT_PAGE_SIZE"], compute)
    first = cached()
    assert cached() == first and len(calls) == 1
    settings.AUDIT_MAX_PAGE_SIZE = 999  # another setting: the value stands
    assert cached() == first and len(calls) == 1
    settings.AUDIT_PAGE_SIZE = 7
    assert cached() == 14 and len(calls) == 2
