from django.apps import AppConfig


class EnrichmentConfig(AppConfig):
    name = "enrichment"
    verbose_name = "Enrichment"

    def ready(self) -> None:
        from agentplatform.probes import register_info
        from enrichment import checks  # noqa: F401 - registers the system checks
        from enrichment.health import provider_health

        # Informational: a provider being down never makes the platform "not ready".
        register_info("enrichment_providers", provider_health)
        from enrichment.health import register_gauges
        from monitoring.metrics import register_gauge

        register_gauges(register_gauge)
