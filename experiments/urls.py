"""Routes of the experiments API, the statistics endpoint included."""

from django.urls import include, path

from experiments import api

app_name = "experiments"
urlpatterns = [
    path("prompts/resolve", api.PromptResolveView.as_view(), name="prompt-resolve"),
    path("experiments/growthbook-features", api.GrowthBookFeaturesView.as_view(), name="growthbook-features"),
    path("experiments/exposures", api.ExposuresView.as_view(), name="experiment-exposures"),
    path("experiments/", api.ExperimentListView.as_view(), name="experiment-list"),
    path("experiments/<slug:key>/", api.ExperimentDetailView.as_view(), name="experiment-detail"),
    path(
        "experiments/<slug:key>/start",
        api.ExperimentTransitionView.as_view(transition="start"),
        name="experiment-start",
    ),
    path(
        "experiments/<slug:key>/pause",
        api.ExperimentTransitionView.as_view(transition="pause"),
        name="experiment-pause",
    ),
    path(
        "experiments/<slug:key>/stop", api.ExperimentTransitionView.as_view(transition="stop"), name="experiment-stop"
    ),
    path("experiments/<slug:key>/promote", api.ExperimentPromoteView.as_view(), name="experiment-promote"),
    path("experiments/<slug:key>/results", api.ResultsView.as_view(), name="experiment-results"),
    path("", include("experiments.stats.urls")),
]
