from django.urls import path

from monitoring import api

app_name = "monitoring"
urlpatterns = [
    path("operations", api.OperationsIngestView.as_view(), name="operations"),
    path("agent-runs", api.AgentRunsIngestView.as_view(), name="agent-runs"),
    path("summary", api.SummaryView.as_view(), name="summary"),
]
