"""Routes of the statistics endpoints, included by ``experiments.urls``."""

from django.urls import path

from .api import ExperimentStatsView

urlpatterns = [
    path("experiments/<slug:key>/stats", ExperimentStatsView.as_view(), name="experiment-stats"),
]
