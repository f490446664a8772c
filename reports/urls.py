from django.urls import path

from reports import api

app_name = "reports"
urlpatterns = [
    path("", api.ReportListView.as_view(), name="report-list"),
    path("<int:report_id>", api.ReportDetailView.as_view(), name="report-detail"),
]
