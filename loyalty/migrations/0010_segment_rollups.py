"""Segment counts at 1M contacts: loyalty_segment_last_purchase (loyalty 0004) emptied with the rows it summarises.

A one-condition segment count (crm.services.segments.segment_count) counts the condition's set of contact ids alone,
without the contacts, so every id in such a set must belong to a live row. 0004's row triggers keep the latest
purchase through inserts, updates and deletes, but a TRUNCATE (Django's flush between transactional tests, a reset)
fires none of them: these statement triggers clear the receipts' or the order lines' half of each row with them, and
drop the rows left with neither. PostgreSQL only, as 0004.
"""

from django.db import migrations

_CLEAR = """
    CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE loyalty_segment_last_purchase SET {column} = NULL WHERE {column} IS NOT NULL;
        DELETE FROM loyalty_segment_last_purchase WHERE till_at IS NULL AND order_at IS NULL;
        RETURN NULL;
    END $$
"""

FORWARD = [
    _CLEAR.format(name="loyalty_purchase_truncated", column="till_at"),
    "CREATE TRIGGER loyalty_purchase_truncated AFTER TRUNCATE ON loyalty_purchase "
    "FOR EACH STATEMENT EXECUTE FUNCTION loyalty_purchase_truncated()",
    _CLEAR.format(name="loyalty_orderline_truncated", column="order_at"),
    "CREATE TRIGGER loyalty_orderline_truncated AFTER TRUNCATE ON crm_sourceorderline "
    "FOR EACH STATEMENT EXECUTE FUNCTION loyalty_orderline_truncated()",
]

BACKWARD = [
    "DROP TRIGGER IF EXISTS loyalty_purchase_truncated ON loyalty_purchase",
    "DROP TRIGGER IF EXISTS loyalty_orderline_truncated ON crm_sourceorderline",
    "DROP FUNCTION IF EXISTS loyalty_purchase_truncated()",
    "DROP FUNCTION IF EXISTS loyalty_orderline_truncated()",
]


def _run(statements):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            for sql in statements:
                schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("loyalty", "0009_till")]
    operations = [migrations.RunPython(_run(FORWARD), _run(BACKWARD), elidable=False)]
