from django.urls import path

from enrichment.api import ContextView, DocumentSearchView

app_name = "enrichment"
urlpatterns = [
    path("enrichment/context", ContextView.as_view(), name="context"),
    path("documents/search", DocumentSearchView.as_view(), name="documents-search"),
]
