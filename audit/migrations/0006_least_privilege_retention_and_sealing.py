"""Least privilege for the audit tables (PostgreSQL): the two writes the application makes to
existing audit rows go through ``SECURITY DEFINER`` functions owned by the role that runs the
migrations, so the application's role needs no UPDATE, DELETE or TRUNCATE on them
(``manage.py setup_db_roles`` grants it only SELECT and INSERT there, and EXECUTE on these).

- ``audit_seal_fill(ids, chain_indexes, prev_hashes, hashes)``: the sealer's one-time fill of empty
  chain fields (the trigger still refuses anything else).
- ``audit_retention_delete(archive_id, batch_size)``: deletes the next batch of the chain's prefix,
  and only events that a retention archive (an ``AuditExport`` of kind ``archive`` whose chain
  range starts where the chain does) holds, none younger than the function's own
  ``audit.retention_min_days`` (set by ``setup_db_roles`` from ``AUDIT_RETENTION_DAYS``, which a
  caller cannot override), and records the checkpoint in the same transaction.

Retention archives now record their chain range (``first_chain_index``, ``last_chain_index``).
Other databases (SQLite, the embedded mode) have no roles: nothing changes there.
"""

from django.db import migrations, models

SEAL_FILL = """
CREATE OR REPLACE FUNCTION audit_seal_fill(
    p_ids bigint[], p_chain_indexes bigint[], p_prev_hashes varchar[], p_hashes varchar[]
) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = {schema}, pg_temp AS $$
DECLARE
    v_filled integer;
BEGIN
    UPDATE audit_auditevent AS e
       SET chain_index = u.chain_index, prev_hash = u.prev_hash, hash = u.hash
      FROM unnest(p_ids, p_chain_indexes, p_prev_hashes, p_hashes) AS u(id, chain_index, prev_hash, hash)
     WHERE e.id = u.id AND e.chain_index IS NULL;
    GET DIAGNOSTICS v_filled = ROW_COUNT;
    RETURN v_filled;
END;
$$;
REVOKE ALL ON FUNCTION audit_seal_fill(bigint[], bigint[], varchar[], varchar[]) FROM PUBLIC;
"""

RETENTION_DELETE = """
CREATE OR REPLACE FUNCTION audit_retention_delete(p_archive_id bigint, p_batch_size integer) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = {schema}, pg_temp
-- The youngest an event may be to be deleted (days); setup_db_roles pins AUDIT_RETENTION_DAYS here.
-- A function's own setting wins over the caller's SET, so the caller cannot lower it.
SET audit.retention_min_days = '1' AS $$
DECLARE
    v_archive record;
    v_start bigint;
    v_count integer;
    v_last_index bigint;
    v_newest timestamptz;
    v_last_hash varchar;
    v_deleted integer;
BEGIN
    IF p_batch_size IS NULL OR p_batch_size < 1 THEN
        RAISE EXCEPTION 'audit retention: batch size must be positive' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT id, path, first_chain_index, last_chain_index INTO v_archive
      FROM audit_auditexport WHERE id = p_archive_id AND kind = 'archive';
    IF NOT FOUND OR v_archive.first_chain_index IS NULL OR v_archive.last_chain_index IS NULL THEN
        RAISE EXCEPTION 'audit retention: % is not a retention archive with a chain range', p_archive_id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- One retention at a time: the checkpoint read below is the start of this batch.
    PERFORM pg_advisory_xact_lock(hashtext('audit_retention_delete'));
    SELECT last_chain_index INTO v_start FROM audit_auditcheckpoint ORDER BY id DESC LIMIT 1;
    v_start := coalesce(v_start, 0);
    IF v_archive.first_chain_index > v_start + 1 THEN
        RAISE EXCEPTION 'audit retention: archive % starts at chain position %, the chain at %: events between are not archived',
            p_archive_id, v_archive.first_chain_index, v_start + 1 USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT count(*), max(chain_index), max(recorded_at) INTO v_count, v_last_index, v_newest
      FROM (SELECT chain_index, recorded_at FROM audit_auditevent
             WHERE chain_index > v_start AND chain_index <= v_archive.last_chain_index
             ORDER BY chain_index LIMIT p_batch_size) AS batch;
    IF v_count = 0 THEN
        RETURN 0;
    END IF;
    IF v_newest >= now() - make_interval(days => current_setting('audit.retention_min_days')::integer) THEN
        RAISE EXCEPTION 'audit retention: events up to chain position % include one recorded at %, younger than % days',
            v_last_index, v_newest, current_setting('audit.retention_min_days') USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT hash INTO v_last_hash FROM audit_auditevent WHERE chain_index = v_last_index;
    -- Transaction-local, and this function's only: the append-only trigger lets these deletes through.
    PERFORM set_config('audit.retention_delete', 'on', true);
    DELETE FROM audit_auditevent WHERE chain_index > v_start AND chain_index <= v_last_index;
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    PERFORM set_config('audit.retention_delete', 'off', true);
    INSERT INTO audit_auditcheckpoint (created_at, last_chain_index, last_hash, deleted_count, archive)
         VALUES (now(), v_last_index, v_last_hash, v_deleted, v_archive.path);
    RETURN v_deleted;
END;
$$;
REVOKE ALL ON FUNCTION audit_retention_delete(bigint, integer) FROM PUBLIC;
"""

DROP = """
DROP FUNCTION IF EXISTS audit_retention_delete(bigint, integer);
DROP FUNCTION IF EXISTS audit_seal_fill(bigint[], bigint[], varchar[], varchar[]);
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT quote_ident(current_schema())")
        schema = cursor.fetchone()[0]
    # No placeholders: RAISE uses %.
    schema_editor.execute(SEAL_FILL.format(schema=schema), params=None)
    schema_editor.execute(RETENTION_DELETE.format(schema=schema), params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0005_checkpoint_guard")]

    operations = [
        migrations.AddField(
            model_name="auditexport",
            name="first_chain_index",
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="auditexport",
            name="last_chain_index",
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.RunPython(forwards, backwards, elidable=False),
    ]
