"""Routes of the traces API."""

from django.urls import path

from traces import otlp_api

app_name = "traces"
urlpatterns = [
    # OTEL_EXPORTER_OTLP_ENDPOINT=<base>/api/v1/otel: exporters append v1/traces themselves.
    path("otel/v1/traces", otlp_api.OtlpTracesView.as_view(), name="otlp-traces"),
]
