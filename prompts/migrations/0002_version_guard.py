"""The database refuses to change or delete a prompt version, whoever asks (not only the ORM).

PostgreSQL gets a trigger function; SQLite (the embedded mode) a pair of triggers doing the same.
"""

from django.db import migrations

from agentplatform.migration_ops import VendorSQL

TABLE = "prompts_promptversion"

POSTGRESQL = f"""
CREATE OR REPLACE FUNCTION prompt_version_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'prompt versions are immutable: % of version % refused', TG_OP, OLD.id
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
DROP TRIGGER IF EXISTS prompt_version_guard ON {TABLE};
CREATE TRIGGER prompt_version_guard BEFORE UPDATE OR DELETE ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION prompt_version_guard();
"""
POSTGRESQL_DROP = f"""
DROP TRIGGER IF EXISTS prompt_version_guard ON {TABLE};
DROP FUNCTION IF EXISTS prompt_version_guard();
"""
SQLITE = [
    f"CREATE TRIGGER IF NOT EXISTS prompt_version_no_update BEFORE UPDATE ON {TABLE} "
    "BEGIN SELECT RAISE(ABORT, 'prompt versions are immutable: UPDATE refused'); END;",
    f"CREATE TRIGGER IF NOT EXISTS prompt_version_no_delete BEFORE DELETE ON {TABLE} "
    "BEGIN SELECT RAISE(ABORT, 'prompt versions are immutable: DELETE refused'); END;",
]
SQLITE_DROP = ["DROP TRIGGER IF EXISTS prompt_version_no_update;", "DROP TRIGGER IF EXISTS prompt_version_no_delete;"]


class Migration(migrations.Migration):
    dependencies = [("prompts", "0001_initial")]

    operations = [
        VendorSQL("postgresql", POSTGRESQL, POSTGRESQL_DROP),
        VendorSQL("sqlite", SQLITE, SQLITE_DROP),
    ]
