"""Cheaper writes to experiments_result on PostgreSQL, with the same guarantees (bench/README.md).

Each ingested row paid for a deferred foreign-key check (one index probe of the variants per row,
about a quarter of the database's time per 1,000-row batch), two B-tree time indexes and an index
on variant_id that only Django's cascade used. Measured per 1,000-row COPY on the bench host:
14.9 ms before, 11.1 ms after, against 6.0 ms for a bare table with only the unique event_id.

- **The key check runs once per statement.** ``result_variant_check``, an AFTER INSERT / UPDATE
  statement trigger over the statement's new rows (a transition table), checks in one query that
  every (experiment_id, variant_id) pair is a variant of that experiment and takes the same
  ``FOR KEY SHARE`` lock on those variant rows a foreign key takes, so a variant cannot go while
  the rows naming it commit. A failed check raises ``foreign_key_violation``, as the key did.
- **A variant with results cannot be deleted**: ``variant_results_guard`` (BEFORE DELETE, per
  variant row) refuses it, looking the results up through the covering index. Only drafts are
  deleted or have their variants replaced, and a draft has no results, so nothing the services do
  meets it; Django no longer cascades from a variant to its results (that cascade was the only
  reader of the variant_id index). Deleting an experiment still deletes its results first
  (Django's cascade on experiment_id, through the covering index).
- **BRIN time indexes.** The rollup reads an experiment's results by ``recorded_at`` (the newest
  slice) and the reports a day of results by ``occurred_at``; rows arrive in time order, so a
  block-range index per column serves both at almost no cost per insert, instead of two
  (experiment_id, time) B-trees. ``autosummarize`` has autovacuum summarise each block range as
  it fills: a range never summarised matches every query, and without it only a VACUUM would
  summarise (on 2 million rows, the rollup's read of its newest ten minutes took 410 ms before a
  VACUUM summarised the ranges, 65 ms after).

SQLite (the embedded mode) keeps its B-tree indexes and gets the delete guard as a trigger.
"""

from django.db import migrations, models

POSTGRESQL = """
DROP INDEX IF EXISTS result_exp_occurred_idx;
DROP INDEX IF EXISTS result_exp_recorded_idx;
DROP INDEX IF EXISTS experiments_result_variant_id_e851b3a3;
CREATE INDEX IF NOT EXISTS result_occurred_brin ON experiments_result USING brin (occurred_at) WITH (autosummarize = on);
CREATE INDEX IF NOT EXISTS result_recorded_brin ON experiments_result USING brin (recorded_at) WITH (autosummarize = on);

CREATE OR REPLACE FUNCTION result_variant_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    wanted bigint;
    found bigint;
BEGIN
    SELECT count(*) INTO wanted FROM (SELECT DISTINCT experiment_id, variant_id FROM new_rows) AS pairs;
    SELECT count(*) INTO found FROM (
        SELECT 1 FROM experiments_variant AS variant
        WHERE (variant.experiment_id, variant.id) IN (SELECT experiment_id, variant_id FROM new_rows)
        FOR KEY SHARE
    ) AS locked;
    IF found <> wanted THEN
        RAISE EXCEPTION 'a result names a variant that is not one of its experiment''s'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END;
$$;
DROP TRIGGER IF EXISTS result_variant_check_insert ON experiments_result;
CREATE TRIGGER result_variant_check_insert AFTER INSERT ON experiments_result
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION result_variant_check();
DROP TRIGGER IF EXISTS result_variant_check_update ON experiments_result;
CREATE TRIGGER result_variant_check_update AFTER UPDATE ON experiments_result
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION result_variant_check();

CREATE OR REPLACE FUNCTION variant_results_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM experiments_result WHERE experiment_id = OLD.experiment_id AND variant_id = OLD.id) THEN
        RAISE EXCEPTION 'variant % has results: it cannot be deleted', OLD.id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN OLD;
END;
$$;
DROP TRIGGER IF EXISTS variant_results_guard ON experiments_variant;
CREATE TRIGGER variant_results_guard BEFORE DELETE ON experiments_variant
    FOR EACH ROW EXECUTE FUNCTION variant_results_guard();

ALTER TABLE experiments_result DROP CONSTRAINT IF EXISTS result_variant_of_experiment_fk;
"""
POSTGRESQL_REVERSE = """
DROP TRIGGER IF EXISTS variant_results_guard ON experiments_variant;
DROP FUNCTION IF EXISTS variant_results_guard();
DROP TRIGGER IF EXISTS result_variant_check_insert ON experiments_result;
DROP TRIGGER IF EXISTS result_variant_check_update ON experiments_result;
DROP FUNCTION IF EXISTS result_variant_check();
ALTER TABLE experiments_result ADD CONSTRAINT result_variant_of_experiment_fk FOREIGN KEY (experiment_id, variant_id)
    REFERENCES experiments_variant (experiment_id, id) DEFERRABLE INITIALLY DEFERRED;
DROP INDEX IF EXISTS result_occurred_brin;
DROP INDEX IF EXISTS result_recorded_brin;
CREATE INDEX IF NOT EXISTS experiments_result_variant_id_e851b3a3 ON experiments_result (variant_id);
CREATE INDEX IF NOT EXISTS result_exp_recorded_idx ON experiments_result (experiment_id, recorded_at);
CREATE INDEX IF NOT EXISTS result_exp_occurred_idx ON experiments_result (experiment_id, occurred_at);
"""
SQLITE = [
    "CREATE TRIGGER IF NOT EXISTS variant_results_guard BEFORE DELETE ON experiments_variant "
    "WHEN EXISTS (SELECT 1 FROM experiments_result WHERE experiment_id = OLD.experiment_id AND variant_id = OLD.id) "
    "BEGIN SELECT RAISE(ABORT, 'the variant has results: it cannot be deleted'); END;",
]
SQLITE_REVERSE = ["DROP TRIGGER IF EXISTS variant_results_guard;"]


def _forwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRESQL, params=None)
    elif vendor == "sqlite":
        for statement in SQLITE:
            schema_editor.execute(statement)


def _backwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRESQL_REVERSE, params=None)
    elif vendor == "sqlite":
        for statement in SQLITE_REVERSE:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("experiments", "0007_result_variant_of_experiment_fk"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            # The state: no cascade from a variant to its results (the guard refuses instead), and
            # the (experiment_id, occurred_at) B-tree is gone from the model (PostgreSQL has BRIN
            # indexes in its place; SQLite keeps its B-trees, which the state no longer names).
            state_operations=[
                migrations.RemoveIndex(model_name="result", name="result_exp_occurred_idx"),
                migrations.AlterField(
                    model_name="result",
                    name="variant",
                    field=models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=models.deletion.DO_NOTHING,
                        related_name="results",
                        to="experiments.variant",
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(_forwards, _backwards)],
        ),
    ]
