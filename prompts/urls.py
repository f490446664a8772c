"""Routes of the prompt registry API (``prompts/resolve`` stays with the experiments' routes)."""

from django.urls import path, register_converter

from prompts import api


class PromptKeyConverter:
    """A prompt key as agents send it: 1-100 letters, digits, '_', '.', ':' or '-'."""

    regex = r"[A-Za-z0-9_.:-]{1,100}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(PromptKeyConverter, "prompt_key")

app_name = "prompts"
urlpatterns: list = [
    # --- registry CRUD, versions, label moves and history (staff) ---
    path("prompts/", api.PromptListView.as_view(), name="prompt-list"),
    path("prompts/<prompt_key:key>", api.PromptDetailView.as_view(), name="prompt-detail"),
    path("prompts/<prompt_key:key>/versions", api.PromptVersionListView.as_view(), name="prompt-version-list"),
    path(
        "prompts/<prompt_key:key>/versions/<int:version>",
        api.PromptVersionDetailView.as_view(),
        name="prompt-version-detail",
    ),
    path("prompts/<prompt_key:key>/labels/<str:label>", api.PromptLabelView.as_view(), name="prompt-label"),
    path(
        "prompts/<prompt_key:key>/labels/<str:label>/history",
        api.PromptLabelHistoryView.as_view(),
        name="prompt-label-history",
    ),
    # --- the label read agents call (hot path, served from the per-process registry) ---
    # GET prompts/<key>/labels/<label> is the route above: api.PromptLabelView serves the read (GET) and the move (PUT).
]
