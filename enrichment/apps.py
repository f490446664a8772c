from django.apps import AppConfig


class EnrichmentConfig(AppConfig):
    name = "enrichment"
    verbose_name = "Enrichment"

    def ready(self) -> None:
        from agentplatform.health import register_info
        from enrichment.health import provider_health

        # Informational: a provider being down never makes the platform "not ready".
        register_info("enrichment_providers", provider_health)
