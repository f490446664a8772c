"""Loads demo data for ``make run`` (idempotent): the admin superuser and each app's demo content."""

from __future__ import annotations

import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from accounts.models import Role

# Apps add their demo content by appending "module.function" names here; each function takes
# keyword ``stdout`` and must be idempotent.
DEMO_SEEDERS: list[str] = []


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

        from django.utils.module_loading import import_string

        for dotted in DEMO_SEEDERS:
            import_string(dotted)(stdout=self.stdout)

        if password:
            self.stdout.write(self.style.SUCCESS(f"Admin login: admin / {password}  (stored in {password_file})"))
        else:
            self.stdout.write("Admin user 'admin' exists; reset its password with: manage.py changepassword admin")
