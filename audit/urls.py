from django.urls import path

from audit.api import AuditEventsView, AuditStatsView

app_name = "audit"
urlpatterns = [
    path("events", AuditEventsView.as_view(), name="events"),
    path("stats", AuditStatsView.as_view(), name="stats"),
]
