from django.apps import AppConfig


class TracesConfig(AppConfig):
    name = "traces"
    verbose_name = "Traces and cost"

    def ready(self) -> None:
        from traces import jobs  # noqa: F401 - registers the retention and partition jobs
