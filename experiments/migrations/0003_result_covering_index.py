from django.db import migrations, models

# Autovacuum visits an insert-only table after 20% new rows by default; until then the newest
# results' pages are not marked all-visible and the index-only scan fetches each of their rows from
# the table. 1% keeps that tail small (docs/statistics.md). PostgreSQL only.
_VACUUM_OFTEN = "ALTER TABLE experiments_result SET (autovacuum_vacuum_insert_scale_factor = 0.01)"
_VACUUM_DEFAULT = "ALTER TABLE experiments_result RESET (autovacuum_vacuum_insert_scale_factor)"


def _postgresql(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    """The per-user index on results becomes covering: it includes every metric column.

    Statistics from raw results then read the index alone, already in (variant, user) order, and
    aggregate each user as a stream instead of hashing a million users (docs/statistics.md,
    "From raw results"). The new index is built before the old one is dropped, so the key order
    (experiment, variant, user) is indexed throughout. Building it holds off result inserts while it
    runs (about 15 s per 10 million results on the bench machine).
    """

    dependencies = [
        ("experiments", "0002_stats_rollups"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="result",
            index=models.Index(
                fields=["experiment", "variant", "user_id"],
                include=("success", "quality_score", "user_feedback", "response_time_ms", "tokens"),
                name="result_exp_variant_user_cov",
            ),
        ),
        migrations.RemoveIndex(
            model_name="result",
            name="result_exp_variant_user_idx",
        ),
        migrations.RunPython(_postgresql(_VACUUM_OFTEN), _postgresql(_VACUUM_DEFAULT)),
    ]
