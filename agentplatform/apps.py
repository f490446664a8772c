from django.apps import AppConfig


class AgentPlatformConfig(AppConfig):
    name = "agentplatform"
    label = "agentplatform"
    verbose_name = "Platform"

    def ready(self) -> None:
        from django.utils.module_loading import autodiscover_modules

        from agentplatform import checks, task_context  # noqa: F401  (registers checks and signals)
        from agentplatform.breakers import breakers_info
        from agentplatform.logging import install_record_factory
        from agentplatform.probes import register_info
        from agentplatform.scheduling import schedules  # noqa: F401  (installs default schedules after migrate)

        install_record_factory()
        register_info("circuit_breakers", breakers_info)
        # Every app declares its jobs in its own jobs.py (register_job); importing them here gives
        # web, worker and beat processes the same jobs and Celery tasks.
        autodiscover_modules("jobs")
