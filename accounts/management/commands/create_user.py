"""``manage.py create_user NAME --role ROLE --password-stdin``: a person's account from the shell."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Role
from accounts.services import user_create
from agentplatform.errors import Conflict, ValidationFailed


def format_problems(error: ValidationFailed) -> str:
    lines = [error.message]
    for field, messages in (error.details or {}).items():
        lines.extend(f"  {field}: {message}" for message in messages)
    return "\n".join(lines)


class Command(BaseCommand):
    help = "Creates a user with a role. The password is read from standard input (never an argument)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument(
            "--password-stdin",
            action="store_true",
            help="Read the password from the first line of standard input (required: arguments leak into ps).",
        )

    def handle(self, *args, username: str, role: str, password_stdin: bool, **options):
        if not password_stdin:
            raise CommandError("Pass --password-stdin and send the password on standard input.")
        if role == Role.AGENT:
            raise CommandError("Agents have API keys, not passwords: use `manage.py create_agent NAME`.")
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise CommandError("No password on standard input.")
        try:
            user = user_create(username=username, role=role, password=password)
        except Conflict as exc:
            raise CommandError(exc.message) from None
        except ValidationFailed as exc:
            raise CommandError(format_problems(exc)) from None
        self.stdout.write(f"Created {user.role} {user.username} (id {user.pk}).")
