from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring"

    def ready(self) -> None:
        from celery.signals import worker_process_shutdown, worker_shutdown

        from agentplatform.probes import register_info
        from monitoring import signals
        from monitoring.operations import operations_buffered, operations_writer_stop

        signals.connect()
        # Acknowledged operations wait in each process's writer (monitoring/operations.py), not in Redis.
        register_info("monitoring_operations_buffer", operations_buffered)
        # A Celery worker stores its pending operations as it stops; web processes through atexit
        # and gunicorn's worker_exit hook.
        worker_shutdown.connect(operations_writer_stop, weak=False, dispatch_uid="monitoring.operations.worker")
        worker_process_shutdown.connect(
            operations_writer_stop, weak=False, dispatch_uid="monitoring.operations.process"
        )
