"""Values derived from settings, read on hot paths: computed once, recomputed when a setting changes.

``settings.X`` goes through Django's ``LazySettings`` in Python on every read, which adds up on code
every request runs (bench/README.md, "Figures behind the code"). A ``CachedSetting`` keeps its
derived value until Django's ``setting_changed`` signal (sent by ``override_settings`` and
pytest-django's ``settings`` fixture) names one of the settings it was computed from. Settings do
not change at run time otherwise.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from django.core.signals import setting_changed
from django.dispatch import receiver

T = TypeVar("T")
_UNSET = object()
_instances: weakref.WeakSet[CachedSetting] = weakref.WeakSet()


class CachedSetting(Generic[T]):
    """``compute()`` (which reads ``names`` from settings), cached until one of ``names`` changes."""

    def __init__(self, names: Iterable[str], compute: Callable[[], T]) -> None:
        self.names = frozenset(names)
        self._compute = compute
        self._value: object = _UNSET
        _instances.add(self)

    def __call__(self) -> T:
        value = self._value
        if value is _UNSET:
            value = self._value = self._compute()
        return value  # type: ignore[return-value]

    def forget(self) -> None:
        self._value = _UNSET


@receiver(setting_changed)
def _forget_changed(*, setting: str, **kwargs) -> None:
    for cached in list(_instances):
        if setting in cached.names:
            cached.forget()
