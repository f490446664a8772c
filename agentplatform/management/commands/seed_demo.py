"""Loads demo data for ``make run`` (idempotent): the admin superuser and each app's demo content."""

from __future__ import annotations

import json
import secrets
from importlib import import_module
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.utils.module_loading import module_has_submodule

from accounts.models import Role

# Each app may ship a ``demo.py`` with ``seed(*, stdout)`` (idempotent); they run in INSTALLED_APPS order.


class Command(BaseCommand):
    help = "Create demo data for local use: a superuser 'admin' (password printed) and each app's demo content."

    def handle(self, *args, **options):
        password_file = Path(settings.VAR_DIR) / "admin-password"
        user_model = get_user_model()
        admin = user_model.objects.filter(username="admin").first()
        if admin is None:
            password = secrets.token_urlsafe(12)
            user_model.objects.create_superuser("admin", "admin@example.com", password, role=Role.ADMIN)
            password_file.parent.mkdir(parents=True, exist_ok=True)
            password_file.write_text(password)
            password_file.chmod(0o600)
        elif password_file.exists():
            password = password_file.read_text().strip()
        else:
            password = None

        for app_config in apps.get_app_configs():
            if module_has_submodule(app_config.module, "demo"):
                import_module(f"{app_config.name}.demo").seed(stdout=self.stdout)

        key_file = Path(settings.VAR_DIR) / "demo-agent-key"
        if key_file.exists() and apps.is_installed("experiments"):
            from experiments.demo import DEMO_PROMPT_TYPE

            body = json.dumps({"user_id": "u-42", "prompt_type": DEMO_PROMPT_TYPE})
            self.stdout.write(
                f"Resolve the demo prompt: curl -H 'Authorization: Api-Key {key_file.read_text().strip()}'"
                f" -H 'Content-Type: application/json' -d '{body}' http://127.0.0.1:8000/api/v1/prompts/resolve"
            )
        if password:
            self.stdout.write(self.style.SUCCESS(f"Admin login: admin / {password}  (stored in {password_file})"))
        else:
            self.stdout.write("Admin user 'admin' exists; reset its password with: manage.py changepassword admin")
