"""``manage.py setup_db_roles --app-role NAME [--password-stdin]``: the least-privilege deployment.

Run it as the database's owner role, the one that runs ``migrate`` and owns the tables (its URL in
``DATABASE_URL`` for this command, as for ``migrate``), after every ``migrate``; it is idempotent.
It creates the application's role if missing (the owner then needs CREATEROLE; otherwise a DBA
creates the role with LOGIN first) and sets its grants from scratch on every table of the schema:

- the audit app's tables (the log, its checkpoints, sealings, verifications, exports): SELECT and
  INSERT only, so no UPDATE, DELETE or TRUNCATE whatever the session sets;
- every other table: SELECT, INSERT, UPDATE, DELETE (no TRUNCATE, REFERENCES or TRIGGER);
- sequences: USAGE and SELECT; the database: CONNECT and TEMPORARY (the bulk writers' staging
  tables); the schema: USAGE (not CREATE);
- EXECUTE on the two ``SECURITY DEFINER`` functions through which the application seals and
  retains the audit log (audit migration 0006), and the retention function's minimum age pinned
  to ``AUDIT_RETENTION_DAYS`` (re-run after changing it).

The web, worker and beat processes then connect as the application's role.
"""

from __future__ import annotations

import re
import sys

from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection, transaction
from psycopg import sql

ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
AUDIT_FUNCTIONS = (
    "audit_seal_fill(bigint[], bigint[], varchar[], varchar[])",
    "audit_retention_delete(bigint, integer)",
)
APP_TABLE_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"
AUDIT_TABLE_PRIVILEGES = "SELECT, INSERT"


def append_only_tables() -> set[str]:
    """The audit app's tables: the application only reads and appends to them."""
    return {model._meta.db_table for model in apps.get_app_config("audit").get_models(include_auto_created=True)}


class Command(BaseCommand):
    help = (
        "Creates the application's database role and grants it least privilege (no UPDATE, DELETE or "
        "TRUNCATE on the audit tables). Run as the owner role that runs migrate, after every migrate."
    )

    def add_arguments(self, parser):
        parser.add_argument("--app-role", required=True, help="The role web, worker and beat connect as.")
        parser.add_argument(
            "--password-stdin",
            action="store_true",
            help="Set the role's password from the first line of standard input (never an argument).",
        )

    def handle(self, *args, app_role: str, password_stdin: bool, **options):
        if connection.vendor != "postgresql":
            raise CommandError("Database roles exist on PostgreSQL only; the embedded SQLite mode has none.")
        if not ROLE_NAME.match(app_role):
            raise CommandError("--app-role must be a lower-case PostgreSQL identifier (letters, digits, _).")
        password = None
        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
            if not password:
                raise CommandError("No password on standard input.")
        with transaction.atomic(), connection.cursor() as cursor:
            owner = self._check_owner(cursor, app_role)
            self._ensure_role(cursor, app_role, password)
            counts = self._grant(cursor, app_role)
        self.stdout.write(
            f"Role {app_role}: {counts['app']} tables read-write, {counts['audit']} audit tables read and "
            f"append only, EXECUTE on {len(AUDIT_FUNCTIONS)} audit functions; owner {owner}; retention "
            f"minimum age {settings.AUDIT_RETENTION_DAYS} days."
        )

    def _check_owner(self, cursor, app_role: str) -> str:
        cursor.execute("SELECT current_user, to_regclass('audit_auditevent') IS NOT NULL")
        owner, migrated = cursor.fetchone()
        if not migrated:
            raise CommandError("The audit tables do not exist yet: run `manage.py migrate` first, as this role.")
        cursor.execute("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'audit_auditevent'::regclass")
        table_owner = cursor.fetchone()[0]
        if table_owner != owner:
            raise CommandError(
                f"Connected as {owner}, but the tables belong to {table_owner}: run this as the role that runs migrate."
            )
        if app_role == owner:
            raise CommandError("The application's role must not be the owner role (the owner can bypass every grant).")
        return owner

    def _ensure_role(self, cursor, app_role: str, password: str | None) -> None:
        cursor.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = %s", [app_role])
        row = cursor.fetchone()
        role = sql.Identifier(app_role)
        if row is None:
            statement = sql.SQL(
                "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT"
            ).format(role)
            try:
                with transaction.atomic():
                    cursor.execute(self._text(statement))
            except DatabaseError as exc:
                raise CommandError(
                    f"Could not create role {app_role} ({exc}). Give this role CREATEROLE, or have a database "
                    f"administrator run `CREATE ROLE {app_role} LOGIN`, then run this command again."
                ) from None
            self.stdout.write(f"Created role {app_role}.")
        elif row[0] or row[1]:
            raise CommandError(f"Role {app_role} is a superuser or bypasses row security: grants would not bind it.")
        if password is not None:
            cursor.execute(self._text(sql.SQL("ALTER ROLE {} PASSWORD {}").format(role, sql.Literal(password))))

    def _grant(self, cursor, app_role: str) -> dict[str, int]:
        role = sql.Identifier(app_role)
        cursor.execute("SELECT current_database(), current_schema()")
        database, schema = cursor.fetchone()
        statements = [
            sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(sql.Identifier(database), role),
            sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), role),
            sql.SQL("REVOKE CREATE ON SCHEMA {} FROM {}").format(sql.Identifier(schema), role),
        ]
        # Tables (plain and partitioned) and views this role owns in the schema.
        cursor.execute(
            "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm') "
            "AND c.relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user) ORDER BY c.relname"
        )
        audit_tables = append_only_tables()
        counts = {"app": 0, "audit": 0}
        for name, kind in cursor.fetchall():
            table = sql.Identifier(schema, name)
            statements.append(sql.SQL("REVOKE ALL ON TABLE {} FROM {}").format(table, role))
            if name in audit_tables:
                privileges, counts["audit"] = AUDIT_TABLE_PRIVILEGES, counts["audit"] + 1
            elif kind in ("v", "m"):
                privileges = "SELECT"
            else:
                privileges, counts["app"] = APP_TABLE_PRIVILEGES, counts["app"] + 1
            statements.append(sql.SQL("GRANT " + privileges + " ON TABLE {} TO {}").format(table, role))
        statements.append(
            sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {} TO {}").format(sql.Identifier(schema), role)
        )
        for function in AUDIT_FUNCTIONS:
            statements.append(sql.SQL("GRANT EXECUTE ON FUNCTION " + function + " TO {}").format(role))
        statements.append(
            sql.SQL("ALTER FUNCTION audit_retention_delete(bigint, integer) SET audit.retention_min_days = {}").format(
                sql.Literal(str(settings.AUDIT_RETENTION_DAYS))
            )
        )
        for statement in statements:
            cursor.execute(self._text(statement))
        return counts

    @staticmethod
    def _text(statement: sql.Composable) -> str:
        return statement.as_string(connection.connection)
