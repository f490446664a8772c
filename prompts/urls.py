"""Routes of the prompt registry API (``prompts/resolve`` stays with the experiments' routes)."""

from django.urls import path, register_converter  # noqa: F401 (the routes land with the views)

from prompts import api  # noqa: F401 (the views land with the routes)


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
]
