from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit"

    def ready(self) -> None:
        from agentplatform.health import register_info
        from audit.selectors import audit_chain_status

        # Informational only: a stale seal or a failed verification never fails readiness.
        register_info("audit", audit_chain_status)
