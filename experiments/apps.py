from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    name = "experiments"
    verbose_name = "Experiments"

    def ready(self) -> None:
        from agentplatform.probes import register_info
        from experiments.services.exposures import exposures_buffered

        register_info("experiments_exposure_buffer", exposures_buffered)
