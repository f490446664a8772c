"""The full-text GIN index (PostgreSQL only; SQLite searches by containment).

Its expression is exactly what ``enrichment.selectors.search_vector()`` compiles to, so the
planner uses it for ``documents_search``.
"""

from django.db import migrations

INDEX = "enr_doc_fts_simple"
CREATE = (
    f"CREATE INDEX IF NOT EXISTS {INDEX} ON enrichment_collecteddocument USING gin "
    "(to_tsvector('simple'::regconfig, COALESCE(title, '') || ' ' || COALESCE(text, '')))"
)
DROP = f"DROP INDEX IF EXISTS {INDEX}"


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("enrichment", "0002_example_sources")]
    operations = [migrations.RunPython(create_index, drop_index)]
