"""PostgreSQL-only parts of the audit table: the append-only trigger and the BRIN/pattern indexes.

On other databases (SQLite in the embedded mode) this migration does nothing: the ORM's refusal
(``AppendOnlyQuerySet``) and the hash chain are the protection there.
"""

from django.db import migrations

TABLE = "audit_auditevent"

GUARD_FUNCTION = f"""
CREATE OR REPLACE FUNCTION audit_event_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        -- Only the retention job sets this, with SET LOCAL, inside its own delete transactions.
        IF current_setting('audit.retention_delete', true) = 'on' THEN
            RETURN OLD;
        END IF;
        RAISE EXCEPTION 'audit events are append-only: DELETE of event % refused', OLD.id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- UPDATE: only the sealer's one-time fill of still-empty chain fields, nothing else changed.
    IF OLD.chain_index IS NULL AND OLD.hash = '' AND OLD.prev_hash = ''
       AND NEW.chain_index IS NOT NULL AND NEW.hash <> '' AND NEW.prev_hash <> ''
       AND (to_jsonb(NEW) - 'chain_index' - 'hash' - 'prev_hash')
           = (to_jsonb(OLD) - 'chain_index' - 'hash' - 'prev_hash') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit events are append-only: UPDATE of event % refused', OLD.id
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
DROP TRIGGER IF EXISTS audit_event_guard ON {TABLE};
CREATE TRIGGER audit_event_guard BEFORE UPDATE OR DELETE ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION audit_event_guard();
"""

DROP_GUARD = f"""
DROP TRIGGER IF EXISTS audit_event_guard ON {TABLE};
DROP FUNCTION IF EXISTS audit_event_guard();
"""

INDEXES = f"""
-- Time ranges over a table that only grows in time order: a few pages of summaries instead of a
-- B-tree the size of the table (retention, exports and period statistics).
CREATE INDEX IF NOT EXISTS audit_recorded_brin ON {TABLE} USING brin (recorded_at) WITH (pages_per_range = 32);
CREATE INDEX IF NOT EXISTS audit_occurred_brin ON {TABLE} USING brin (occurred_at) WITH (pages_per_range = 32);
-- LIKE 'experiment.%' can use a B-tree only with pattern operators under a non-C collation.
CREATE INDEX IF NOT EXISTS audit_action_prefix ON {TABLE} (action varchar_pattern_ops, occurred_at DESC);
"""

DROP_INDEXES = """
DROP INDEX IF EXISTS audit_recorded_brin;
DROP INDEX IF EXISTS audit_occurred_brin;
DROP INDEX IF EXISTS audit_action_prefix;
"""


class PostgreSQLOnlySQL(migrations.RunSQL):
    """``RunSQL`` that runs only when the database is PostgreSQL."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [
        PostgreSQLOnlySQL(INDEXES, DROP_INDEXES),
        PostgreSQLOnlySQL(GUARD_FUNCTION, DROP_GUARD),
    ]
