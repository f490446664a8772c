"""gunicorn.conf.py: a loaded worker's objects are frozen out of the garbage collector's reach."""

from __future__ import annotations

import gc
import runpy

import pytest

from tests.conftest import ROOT


@pytest.fixture
def unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()  # the test process goes on collecting as before


def test_post_worker_init_freezes_what_the_loaded_app_holds(unfrozen, monkeypatch):
    monkeypatch.delenv("GUNICORN_GC_FREEZE", raising=False)
    hooks = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert gc.get_freeze_count() == 0
    loaded = len(gc.get_objects())
    hooks["post_worker_init"](None)
    assert gc.get_freeze_count() >= loaded // 2  # the app's objects, now out of every collection
    assert len(gc.get_objects()) < loaded // 2


def test_gunicorn_gc_freeze_0_leaves_the_collector_alone(unfrozen, monkeypatch):
    monkeypatch.setenv("GUNICORN_GC_FREEZE", "0")
    hooks = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    hooks["post_worker_init"](None)
    assert gc.get_freeze_count() == 0
