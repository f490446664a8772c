"""The benchmark harness's views under ``/api/v1/bench/``, included by ``agentplatform/urls.py`` only
when ``BENCH_ENDPOINTS=1`` (``bench/run.py`` sets it; production warns about it, agentplatform.W001)."""

from django.urls import path

from bench import views

urlpatterns = [
    path("noop", views.NoopView.as_view(), name="bench-noop"),
    path("noop-auth", views.AuthenticatedNoopView.as_view(), name="bench-noop-auth"),
    path("noop-limited", views.RateLimitedNoopView.as_view(), name="bench-noop-limited"),
    path("noop-untimed", views.UntimedNoopView.as_view(), name="bench-noop-untimed"),
    path("noop-audit", views.NoopWithAuditView.as_view(), name="bench-noop-audit"),
]
