from django.conf import settings
from django.urls import path

from audit.api import AuditEventsView, AuditStatsView

app_name = "audit"
urlpatterns = [
    path("events", AuditEventsView.as_view(), name="events"),
    path("stats", AuditStatsView.as_view(), name="stats"),
]
if settings.BENCH_ENDPOINTS:
    from audit.bench_views import NoopWithAuditView

    urlpatterns += [path("bench/noop-audit", NoopWithAuditView.as_view(), name="bench-noop-audit")]
