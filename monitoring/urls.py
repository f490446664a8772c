from django.conf import settings
from django.urls import path

from monitoring import api

app_name = "monitoring"
urlpatterns = [
    path("operations", api.OperationsIngestView.as_view(), name="operations"),
    path("agent-runs", api.AgentRunsIngestView.as_view(), name="agent-runs"),
    path("summary", api.SummaryView.as_view(), name="summary"),
]
if settings.BENCH_ENDPOINTS:
    from agentplatform.bench_views import NoopView

    # The same no-op as /api/v1/bench/noop, skipped by the timing middleware: the bench divides one
    # by the other to measure the middleware's cost (docs/monitoring.md).
    urlpatterns.append(path("bench/noop-untimed", NoopView.as_view(), name="bench-noop-untimed"))
