"""Drop three of a red-packet claim's eight indexes, which every claim paid to write (a Singles' Day burst
inserts claims by the thousand a second, and 1M of them is one big pool's worth):

- crm_redpacketclaim.pool_id: the unique (pool_id, contact_id) leads with it, and serves every by-pool query;
- the LIKE twins of billno and status (`varchar_pattern_ops`, PostgreSQL): no query matches either by prefix
  (the console's billno search is a `contains`, which no btree serves).

The database side is a plain DROP INDEX, as loyalty 0015's: Django's AlterField of the foreign key would also drop
and re-add its constraint, validating every row under a lock. The LIKE twins are not in Django's state at all (a
CharField's db_index or unique implies them); a later AlterField drops them with IF EXISTS, so it finds nothing to
trip on. SQLite has no LIKE twins.
"""

from django.db import migrations, models

from crm.migration_ops import drop_redundant_indexes

INDEXES = [
    ("crm_redpacketclaim_pool_id_c0da49fa", "crm_redpacketclaim", "pool_id", ""),
    ("crm_redpacketclaim_billno_13fe34c0_like", "crm_redpacketclaim", "billno", "varchar_pattern_ops"),
    ("crm_redpacketclaim_status_6f29201f_like", "crm_redpacketclaim", "status", "varchar_pattern_ops"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0026_redpacketpool_base_manager"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[drop_redundant_indexes(INDEXES)],
            state_operations=[
                migrations.AlterField(
                    model_name="redpacketclaim",
                    name="pool",
                    field=models.ForeignKey(
                        db_index=False, on_delete=models.deletion.PROTECT, related_name="claims",
                        to="crm.redpacketpool",
                    ),
                ),
            ],
        ),
    ]
