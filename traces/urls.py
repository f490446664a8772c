"""Routes of the traces read API and the model price API (the OTLP ingest route is its own)."""

from django.urls import path

from traces import api

app_name = "traces"
urlpatterns = [
    path("traces", api.TraceListView.as_view(), name="trace-list"),
    path("traces/<str:trace_id>", api.TraceDetailView.as_view(), name="trace-detail"),
    path("model-prices", api.ModelPriceListView.as_view(), name="model-price-list"),
    path("model-prices/<int:price_id>", api.ModelPriceDetailView.as_view(), name="model-price-detail"),
]
