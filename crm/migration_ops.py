"""Migration operations shared by the apps' migrations (migrations import this module: keep its names stable).

`drop_redundant_indexes`: drop single-column indexes that other indexes already serve, as a plain `DROP INDEX`
(crm 0027, loyalty 0015). Django's own AlterField would also drop and re-add a foreign key's constraint, validating
every row of a large table under a lock, just to lose its index; and a CharField's LIKE twin
(`varchar_pattern_ops`, PostgreSQL) is not in Django's state at all. Backwards, each index is made again (a LIKE
twin only on PostgreSQL, where it existed).
"""

from __future__ import annotations

from django.db import migrations

# (index name, table, column, operator class or "")
Index = tuple[str, str, str, str]


def drop_redundant_indexes(indexes: list[Index]) -> migrations.RunPython:
    def drop(apps, schema_editor):
        for name, _table, _column, _ops in indexes:
            schema_editor.execute(f'DROP INDEX IF EXISTS "{name}"')

    def restore(apps, schema_editor):
        postgres = schema_editor.connection.vendor == "postgresql"
        for name, table, column, ops in indexes:
            if ops and not postgres:
                continue
            opclass = f" {ops}" if ops else ""
            schema_editor.execute(f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" ("{column}"{opclass})')

    return migrations.RunPython(drop, restore)
