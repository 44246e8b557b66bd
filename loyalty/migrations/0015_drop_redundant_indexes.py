"""Drop four single-column indexes whose column already leads another index, which a till scan paid to write
(docs/loyalty-till.md, Fourth pass):

- loyalty_purchase.store_id: the unique (store_id, receipt_id) leads with it;
- loyalty_purchase.scanned_at: purchase_scanned_contact_amount (loyalty 0004, PostgreSQL) leads with it;
- loyalty_purchaseline.sku (and its LIKE twin, which no query uses): purchaseline_sku_scanned_contact (0004);
- loyalty_card.tier_id: card_tier_contact (0004).

The database side is a plain DROP INDEX: Django's AlterField would also drop and re-add the two foreign keys,
and re-adding one validates every row of the table under a lock. SQLite (development) has no 0004 indexes; its
tables are small, so it loses these too.
"""

from django.db import migrations, models

from crm.migration_ops import drop_redundant_indexes

INDEXES = [
    ("loyalty_purchase_store_id_db150259", "loyalty_purchase", "store_id", ""),
    ("loyalty_purchase_scanned_at_b9dc6604", "loyalty_purchase", "scanned_at", ""),
    ("loyalty_purchaseline_sku_4a00f212", "loyalty_purchaseline", "sku", ""),
    ("loyalty_purchaseline_sku_4a00f212_like", "loyalty_purchaseline", "sku", "varchar_pattern_ops"),
    ("loyalty_card_tier_id_42b43a05", "loyalty_card", "tier_id", ""),
]


class Migration(migrations.Migration):
    dependencies = [
        ("loyalty", "0014_birthday_earning"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[drop_redundant_indexes(INDEXES)],
            state_operations=[
                migrations.AlterField(
                    model_name="card",
                    name="tier",
                    field=models.ForeignKey(
                        blank=True, db_index=False, null=True, on_delete=models.deletion.PROTECT,
                        related_name="cards", to="loyalty.tier",
                    ),
                ),
                migrations.AlterField(
                    model_name="purchase",
                    name="scanned_at",
                    field=models.DateTimeField(auto_now_add=True),
                ),
                migrations.AlterField(
                    model_name="purchase",
                    name="store",
                    field=models.ForeignKey(
                        db_index=False, on_delete=models.deletion.PROTECT, related_name="purchases",
                        to="loyalty.store",
                    ),
                ),
                migrations.AlterField(
                    model_name="purchaseline",
                    name="sku",
                    field=models.CharField(max_length=64),
                ),
            ],
        ),
    ]
