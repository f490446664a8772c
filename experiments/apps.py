from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    name = "experiments"
    verbose_name = "Experiments"

    def ready(self) -> None:
        from django.conf import settings

        from agentplatform.health import register_info
        from agentplatform.schedules import Schedule, register_schedule
        from experiments.services.exposures import exposures_buffered

        register_schedule(
            Schedule(
                name="experiments exposure flush",
                task="experiments.flush_exposures",
                every_seconds=settings.EXPERIMENTS_EXPOSURE_FLUSH_SECONDS,
                description="Moves exposures buffered in Redis by prompt resolves into the database.",
            )
        )
        register_info("experiments_exposure_buffer", exposures_buffered)
