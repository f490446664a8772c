from django.apps import AppConfig, apps
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts import lockout, schema, signals  # noqa: F401  (receivers, OpenAPI extensions)

        # post_migrate is sent once per app; sync after the last one, when every app's
        # permissions have been created (django.contrib.auth creates them in its own receiver).
        last_app = [config for config in apps.get_app_configs() if config.models_module][-1]
        post_migrate.connect(
            signals.sync_role_groups_after_migrate, sender=last_app, dispatch_uid="accounts.role_groups_sync"
        )
