"""PostgreSQL: retention checkpoints are append-only too (a trigger refuses UPDATE and DELETE).

A checkpoint tells the verifier where the chain legitimately starts after retention. Rewriting or
deleting one would move that start; ``verify_audit`` also checks each checkpoint against its
archive file, outside the database. Other databases rely on the ORM's refusal and that check.
"""

from django.db import migrations

TABLE = "audit_auditcheckpoint"

GUARD = f"""
CREATE OR REPLACE FUNCTION audit_checkpoint_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit retention checkpoints are append-only: % of checkpoint % refused', TG_OP, OLD.id
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
DROP TRIGGER IF EXISTS audit_checkpoint_guard ON {TABLE};
CREATE TRIGGER audit_checkpoint_guard BEFORE UPDATE OR DELETE ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION audit_checkpoint_guard();
"""

DROP_GUARD = f"""
DROP TRIGGER IF EXISTS audit_checkpoint_guard ON {TABLE};
DROP FUNCTION IF EXISTS audit_checkpoint_guard();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(GUARD, params=None)  # no placeholders: RAISE uses %


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_GUARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0004_partial_indexes_for_empty_keys")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
