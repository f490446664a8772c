from django.apps import AppConfig


class AgentPlatformConfig(AppConfig):
    name = "agentplatform"
    label = "agentplatform"
    verbose_name = "Platform"

    def ready(self) -> None:
        from agentplatform import checks, schedules, task_context  # noqa: F401  (registers checks and signals)
        from agentplatform.breakers import breakers_info
        from agentplatform.health import register_info
        from agentplatform.logging import install_record_factory

        install_record_factory()
        register_info("circuit_breakers", breakers_info)
