"""Server-made event ids become time-ordered (UUIDv7), and the action has one index, not two.

- ``event_id``'s default is ``agentplatform.ids.uuid7``: a new Python default, no SQL.
- Migration 0002 added ``audit_action_prefix`` (``action varchar_pattern_ops, occurred_at DESC``)
  next to the model's ``audit_action_idx`` (``action, occurred_at DESC``) on PostgreSQL. Pattern
  operators serve equality as well as ``LIKE 'prefix%'``, so the plain twin only cost every insert
  an index entry (and ~3 GB at 100 million rows). On PostgreSQL the plain one is dropped and the
  pattern-ops one renamed in its place (no index build); the model now declares the opclass.
  Other databases keep their one index, unchanged.
"""

from importlib import import_module

from django.db import migrations, models

import agentplatform.ids

PostgreSQLOnlySQL = import_module("audit.migrations.0002_postgresql_guards").PostgreSQLOnlySQL

ONE_ACTION_INDEX = """
DROP INDEX IF EXISTS audit_action_idx;
ALTER INDEX IF EXISTS audit_action_prefix RENAME TO audit_action_idx;
"""

TWO_ACTION_INDEXES = """
ALTER INDEX IF EXISTS audit_action_idx RENAME TO audit_action_prefix;
CREATE INDEX IF NOT EXISTS audit_action_idx ON audit_auditevent (action, occurred_at DESC);
"""


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_postgresql_guards")]

    operations = [
        # A Python default only: no SQL (SQLite's schema editor would otherwise rebuild the table).
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="auditevent",
                    name="event_id",
                    field=models.UUIDField(default=agentplatform.ids.uuid7, editable=False, unique=True),
                ),
            ]
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveIndex(model_name="auditevent", name="audit_action_idx"),
                migrations.AddIndex(
                    model_name="auditevent",
                    index=models.Index(
                        fields=["action", "-occurred_at"],
                        name="audit_action_idx",
                        opclasses=["varchar_pattern_ops", ""],
                    ),
                ),
            ],
            database_operations=[PostgreSQLOnlySQL(ONE_ACTION_INDEX, TWO_ACTION_INDEXES)],
        ),
    ]
