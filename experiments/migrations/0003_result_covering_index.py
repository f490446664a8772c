from django.db import migrations, models

# The per-user index on results becomes covering: it includes every metric column, so statistics
# from raw results read the index alone, already in (variant, user) order, and aggregate each user
# as a stream instead of hashing a million users (docs/statistics.md, "From raw results").
#
# On PostgreSQL the user_id key column uses the "C" collation: the index only serves grouping
# (equality, the same under any deterministic collation) and that order, and byte comparisons make
# both inserts and the scan cheaper than locale ones (measured in the doc). The raw query groups by
# user_id COLLATE "C" to match. The migration state records the index without the collation, which
# Django cannot express portably; SQLite gets the plain key index.
#
# Autovacuum visits an insert-only table after 20% new rows by default; until then the newest
# results' pages are not marked all-visible and the index-only scan fetches each of their rows from
# the table. 1% keeps that tail small (PostgreSQL table storage parameter).
#
# The new index is built before the old one is dropped. Building it holds off result inserts while
# it runs (about 15 s per 10 million results on the bench machine).

INCLUDE = ("success", "quality_score", "user_feedback", "response_time_ms", "tokens")

POSTGRESQL_FORWARD = [
    'CREATE INDEX result_exp_variant_user_cov ON experiments_result (experiment_id, variant_id, user_id COLLATE "C") '
    f"INCLUDE ({', '.join(INCLUDE)})",
    "DROP INDEX result_exp_variant_user_idx",
    "ALTER TABLE experiments_result SET (autovacuum_vacuum_insert_scale_factor = 0.01)",
]
POSTGRESQL_BACKWARD = [
    "CREATE INDEX result_exp_variant_user_idx ON experiments_result (experiment_id, variant_id, user_id)",
    "DROP INDEX result_exp_variant_user_cov",
    "ALTER TABLE experiments_result RESET (autovacuum_vacuum_insert_scale_factor)",
]
OTHER_FORWARD = [
    "CREATE INDEX result_exp_variant_user_cov ON experiments_result (experiment_id, variant_id, user_id)",
    "DROP INDEX result_exp_variant_user_idx",
]
OTHER_BACKWARD = [
    "CREATE INDEX result_exp_variant_user_idx ON experiments_result (experiment_id, variant_id, user_id)",
    "DROP INDEX result_exp_variant_user_cov",
]


def _run(postgresql: list[str], other: list[str]):
    def run(apps, schema_editor):
        for statement in postgresql if schema_editor.connection.vendor == "postgresql" else other:
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("experiments", "0002_stats_rollups"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddIndex(
                    model_name="result",
                    index=models.Index(
                        fields=["experiment", "variant", "user_id"], include=INCLUDE, name="result_exp_variant_user_cov"
                    ),
                ),
                migrations.RemoveIndex(model_name="result", name="result_exp_variant_user_idx"),
            ],
            database_operations=[
                migrations.RunPython(
                    _run(POSTGRESQL_FORWARD, OTHER_FORWARD), _run(POSTGRESQL_BACKWARD, OTHER_BACKWARD)
                ),
            ],
        ),
    ]
