from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring"

    def ready(self) -> None:
        from agentplatform.probes import register_info
        from monitoring import signals
        from monitoring.selectors import metrics_store_durability

        signals.connect()
        # Informational: a Redis without an append-only file still serves, but /readyz says what a
        # restart of it would lose.
        register_info("monitoring_store", metrics_store_durability)
