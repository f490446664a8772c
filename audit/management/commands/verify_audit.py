"""``python manage.py verify_audit``: walk the hash chain; exit 1 naming the first broken event."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from audit.integrity import audit_seal_pending, audit_verify_chain


class Command(BaseCommand):
    help = (
        "Verifies the audit log's hash chain from the last retention checkpoint to the head recorded at "
        "the last sealing. Exits 1 and names the first broken event when a sealed event was modified, "
        "deleted or reordered, or when retention's checkpoints disagree with its archives."
    )

    def add_arguments(self, parser):
        parser.add_argument("--seal-first", action="store_true", help="Seal pending events before verifying.")
        parser.add_argument(
            "--archives",
            choices=["latest", "all", "none"],
            default="latest",
            help=(
                "Which retention archives to check the checkpoints against: the latest (default), all of "
                "them back to the first event, or none (archives moved off this host)."
            ),
        )

    def handle(self, *args, **options):
        if options["seal_first"]:
            sealed = audit_seal_pending()
            self.stdout.write(f"sealed {sealed} pending events")
        result = audit_verify_chain(archives=options["archives"])
        if not result.ok:
            raise CommandError(f"audit chain BROKEN: {result.message}", returncode=1)
        self.stdout.write(self.style.SUCCESS(f"audit chain OK: {result.message}"))
