"""Migration operations several apps share: SQL for one database vendor, and partitioned tables.

Referenced by migrations, so a name here is part of their history: change behaviour, never names.
"""

from __future__ import annotations

import re

from django.db import migrations


class VendorSQL(migrations.RunSQL):
    """``RunSQL`` that runs only on one database vendor."""

    def __init__(self, vendor, sql, reverse_sql):
        self.vendor = vendor
        super().__init__(sql, reverse_sql)

    def deconstruct(self):
        name, args, kwargs = super().deconstruct()
        return name, [self.vendor, *args], kwargs

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == self.vendor:
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == self.vendor:
            super().database_backwards(app_label, schema_editor, from_state, to_state)


class CreatePartitionedModel(migrations.CreateModel):
    """``CreateModel`` whose table is range-partitioned by ``partition_key`` on PostgreSQL.

    The table Django would create, except that the primary key becomes ``(id, partition_key)`` (a
    partitioned table's unique keys must hold its partition key) and it is declared
    ``PARTITION BY RANGE (partition_key)``; its indexes are created on the parent, so every
    partition gets them. Partitions themselves are made at run time (``traces.partitions``). Other
    databases get the plain table.
    """

    def __init__(self, name, fields, options=None, bases=None, managers=None, *, partition_key: str):
        self.partition_key = partition_key
        super().__init__(name, fields, options=options, bases=bases, managers=managers)

    def deconstruct(self):
        _name, args, kwargs = super().deconstruct()
        return self.__class__.__qualname__, args, {**kwargs, "partition_key": self.partition_key}

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, self.name)
        if schema_editor.connection.vendor != "postgresql" or not self.allow_migrate_model(
            schema_editor.connection.alias, model
        ):
            super().database_forwards(app_label, schema_editor, from_state, to_state)
            return
        sql, params = schema_editor.table_sql(model)
        pk_column = schema_editor.quote_name(model._meta.pk.column)
        key_column = schema_editor.quote_name(model._meta.get_field(self.partition_key).column)
        # The id column keeps its identity default but loses its single-column PRIMARY KEY.
        sql, found = re.subn(rf"({re.escape(pk_column)} [^,]*?) PRIMARY KEY", r"\1", sql, count=1)
        if not found:
            raise ValueError(f"no single-column primary key found in {sql!r}")
        sql = sql[: sql.rindex(")")] + f", PRIMARY KEY ({pk_column}, {key_column}))"
        sql += f" PARTITION BY RANGE ({key_column})"
        schema_editor.execute(sql, params or None)
        for index in model._meta.indexes:
            schema_editor.add_index(model, index)

    def describe(self):
        return f"{super().describe()}, partitioned by {self.partition_key} on PostgreSQL"
