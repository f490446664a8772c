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
    # --- the label read agents call (hot path, served from the per-process registry) ---
    path("prompts/<prompt_key:key>/labels/<str:label>", api.PromptLabelReadView.as_view(), name="prompt-label"),
]
