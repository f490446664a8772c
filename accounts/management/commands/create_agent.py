"""``manage.py create_agent NAME``: an agent identity and its API key, printed as the last line."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from accounts.management.commands.create_user import format_problems
from accounts.services import agent_create
from agentplatform.errors import Conflict, ValidationFailed


class Command(BaseCommand):
    help = "Creates an agent user and an API key. The key is the last line of output and is shown only once."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--key-name", default="", help="What the key is for (shown in the admin).")

    def handle(self, *args, username: str, key_name: str, **options):
        try:
            user, api_key, raw_key = agent_create(username=username, key_name=key_name)
        except Conflict as exc:
            raise CommandError(exc.message) from None
        except ValidationFailed as exc:
            raise CommandError(format_problems(exc)) from None
        self.stdout.write(
            f"Created agent {user.username} (id {user.pk}) with API key {api_key.prefix}…; "
            "store the key now, it cannot be shown again. Send it as 'Authorization: Api-Key <key>'."
        )
        self.stdout.write(raw_key)
