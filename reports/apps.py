from django.apps import AppConfig


class ReportsConfig(AppConfig):
    name = "reports"
    verbose_name = "Reports and jobs"

    def ready(self) -> None:
        from reports import schedules

        schedules.register_job_schedules()
