from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    name = "experiments"
    verbose_name = "Experiments"

    def ready(self) -> None:
        from celery.signals import worker_process_shutdown, worker_shutdown

        from agentplatform.probes import register_info
        from experiments.services.exposures import exposures_buffered, exposures_writer_stop

        # Exposures are inserted by each process's own writer (experiments/services/exposures.py), no schedule.
        register_info("experiments_exposure_buffer", exposures_buffered)
        # A Celery worker stores its pending exposures as it stops; web processes through atexit
        # and gunicorn's worker_exit hook.
        worker_shutdown.connect(exposures_writer_stop, weak=False, dispatch_uid="experiments.exposures.worker")
        worker_process_shutdown.connect(exposures_writer_stop, weak=False, dispatch_uid="experiments.exposures.process")
