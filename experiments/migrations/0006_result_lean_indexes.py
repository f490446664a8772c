from django.db import migrations, models

# Two indexes of experiments_result that no query uses, each paid for by every ingested row
# (bench/README.md, "Batch endpoints"):
#
# - the experiment foreign key's own index on (experiment_id): result_exp_occurred_idx,
#   result_exp_recorded_idx and the covering index all lead with experiment_id and serve the
#   deletes by experiment (Django's cascade, the foreign key's check when an experiment goes) and
#   every per-experiment read; EXPLAIN of both deletes picks one of them;
# - PostgreSQL's varchar_pattern_ops twin of the unique event_id index, which Django adds for a
#   unique CharField to serve LIKE 'prefix%': nothing filters results by an event_id prefix (the
#   admin's search is a case-insensitive contains, which no B-tree serves). PostgreSQL only; the
#   unique index stays.
#
# The state change alone (db_index=False) would make Django drop and re-add the foreign key,
# re-checking every stored result under a lock; dropping the index by name does not touch it.

FK_INDEX = "experiments_result_experiment_id_4261a7bc"
PATTERN_INDEX = "experiments_result_event_id_719b9db2_like"


def _drop(apps, schema_editor):
    schema_editor.execute(f"DROP INDEX IF EXISTS {FK_INDEX}")
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {PATTERN_INDEX}")


def _restore(apps, schema_editor):
    schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {FK_INDEX} ON experiments_result (experiment_id)")
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {PATTERN_INDEX} ON experiments_result (event_id varchar_pattern_ops)"
        )


class Migration(migrations.Migration):
    dependencies = [
        ("experiments", "0005_variant_content_to_versions"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="result",
                    name="experiment",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=models.deletion.CASCADE,
                        related_name="results",
                        to="experiments.experiment",
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(_drop, _restore)],
        ),
    ]
