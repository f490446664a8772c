from django.urls import path

from monitoring.metrics import metrics_view

urlpatterns = [path("", metrics_view, name="metrics")]
