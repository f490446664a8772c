from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit"

    def ready(self) -> None:
        from celery.signals import worker_process_shutdown, worker_shutdown

        from agentplatform.probes import register_info
        from audit import admin_trail
        from audit.background import stop_background_writer
        from audit.selectors import audit_chain_status

        admin_trail.connect()  # every admin change is audited
        # Informational only: a stale seal or a failed verification never fails readiness.
        register_info("audit", audit_chain_status)
        # A Celery worker drains its background writer (if anything handed it events) as it stops;
        # web processes drain through atexit and gunicorn's worker_exit hook.
        worker_shutdown.connect(stop_background_writer, weak=False, dispatch_uid="audit.background.worker")
        worker_process_shutdown.connect(stop_background_writer, weak=False, dispatch_uid="audit.background.process")
