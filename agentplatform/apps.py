from django.apps import AppConfig


class AgentPlatformConfig(AppConfig):
    name = "agentplatform"
    label = "agentplatform"
    verbose_name = "Platform"

    def ready(self) -> None:
        from agentplatform import checks, schedules, task_context  # noqa: F401  (registers checks and signals)
        from agentplatform.breakers import breakers_info
        from agentplatform.logging import install_record_factory
        from agentplatform.probes import register_info

        install_record_factory()
        register_info("circuit_breakers", breakers_info)
