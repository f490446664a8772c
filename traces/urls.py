"""Routes of the traces app: the OTLP ingest, the traces read API and the model price API."""

from django.urls import path

from traces import api, otlp_api

app_name = "traces"
urlpatterns = [
    # OTEL_EXPORTER_OTLP_ENDPOINT=<base>/api/v1/otel: exporters append v1/traces themselves.
    path("otel/v1/traces", otlp_api.OtlpTracesView.as_view(), name="otlp-traces"),
    path("traces", api.TraceListView.as_view(), name="trace-list"),
    path("traces/<str:trace_id>", api.TraceDetailView.as_view(), name="trace-detail"),
    path("model-prices", api.ModelPriceListView.as_view(), name="model-price-list"),
    path("model-prices/<int:price_id>", api.ModelPriceDetailView.as_view(), name="model-price-detail"),
]
