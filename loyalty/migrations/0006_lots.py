"""Points lots with expiry and till returns (issue 12, items 2 and 3).

A balance that predates lots becomes one opening lot per card, expiring LOYALTY_POINTS_EXPIRY after this migration
(months only; "end_of_next_year" is honoured too), so sum(open lots) == balance holds from the start."""

from datetime import datetime
from zoneinfo import ZoneInfo

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def open_lots_for_existing_balances(apps, schema_editor):
    Card = apps.get_model("loyalty", "Card")
    PointsLot = apps.get_model("loyalty", "PointsLot")
    from loyalty.services.lots import lot_expiry  # a pure function of (time, setting): safe in a migration

    expires_on, expires_at = lot_expiry(datetime.now(ZoneInfo("UTC")))
    PointsLot.objects.bulk_create(
        PointsLot(card_id=card_id, points=balance, remaining=balance, expires_on=expires_on, expires_at=expires_at)
        for card_id, balance in Card.objects.filter(points_balance__gt=0).values_list("pk", "points_balance")
    )


class Migration(migrations.Migration):
    dependencies = [
        ("loyalty", "0005_earning"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="PointsLot",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("points", models.PositiveIntegerField(verbose_name="points")),
                ("remaining", models.PositiveIntegerField(verbose_name="remaining")),
                ("expires_on", models.DateField(verbose_name="expires on")),
                ("expires_at", models.DateTimeField(db_index=True, verbose_name="expires at")),
                ("created_at", models.DateTimeField(auto_now_add=True)),
            ],
            options={
                "verbose_name": "points lot",
                "verbose_name_plural": "points lots",
                "ordering": ["expires_at", "id"],
            },
        ),
        migrations.CreateModel(
            name="PurchaseReturn",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("return_id", models.CharField(max_length=64, verbose_name="return id")),
                ("amount_fen", models.PositiveBigIntegerField(default=0, verbose_name="amount (fen)")),
                ("points_reversed", models.PositiveIntegerField(default=0, verbose_name="points reversed")),
                ("shortfall", models.PositiveIntegerField(default=0, verbose_name="shortfall")),
                ("created_at", models.DateTimeField(auto_now_add=True, db_index=True, verbose_name="created at")),
            ],
            options={
                "verbose_name": "return",
                "verbose_name_plural": "returns",
                "ordering": ["-created_at", "-id"],
            },
        ),
        migrations.CreateModel(
            name="ReturnLine",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("sku", models.CharField(max_length=64)),
                ("qty", models.PositiveIntegerField()),
                ("amount_fen", models.PositiveBigIntegerField(default=0)),
                ("points", models.PositiveIntegerField(default=0)),
            ],
            options={
                "ordering": ["id"],
            },
        ),
        migrations.RemoveConstraint(
            model_name="card",
            name="card_balance_gte_0",
        ),
        migrations.AlterField(
            model_name="pointsledger",
            name="kind",
            field=models.CharField(
                choices=[
                    ("earn", "Earn"),
                    ("redeem", "Redeem"),
                    ("adjust", "Adjust"),
                    ("expire", "Expire"),
                    ("return", "Return"),
                ],
                max_length=8,
            ),
        ),
        migrations.AddField(
            model_name="pointslot",
            name="card",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="lots", to="loyalty.card"
            ),
        ),
        migrations.AddField(
            model_name="pointslot",
            name="entry",
            field=models.OneToOneField(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="lot",
                to="loyalty.pointsledger",
            ),
        ),
        migrations.AddField(
            model_name="purchasereturn",
            name="cashier",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="purchasereturn",
            name="entry",
            field=models.OneToOneField(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="purchase_return",
                to="loyalty.pointsledger",
            ),
        ),
        migrations.AddField(
            model_name="purchasereturn",
            name="purchase",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="returns", to="loyalty.purchase"
            ),
        ),
        migrations.AddField(
            model_name="purchasereturn",
            name="store",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="returns", to="loyalty.store"
            ),
        ),
        migrations.AddField(
            model_name="returnline",
            name="line",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="returned", to="loyalty.purchaseline"
            ),
        ),
        migrations.AddField(
            model_name="returnline",
            name="purchase_return",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="lines", to="loyalty.purchasereturn"
            ),
        ),
        migrations.AddIndex(
            model_name="pointslot",
            index=models.Index(
                condition=models.Q(("remaining__gt", 0)), fields=["card", "expires_at", "id"], name="lot_open_by_card"
            ),
        ),
        migrations.AddConstraint(
            model_name="pointslot",
            constraint=models.CheckConstraint(
                condition=models.Q(("remaining__lte", models.F("points"))), name="lot_remaining_lte_points"
            ),
        ),
        migrations.AddConstraint(
            model_name="purchasereturn",
            constraint=models.UniqueConstraint(fields=("store", "return_id"), name="uniq_return_store_return_id"),
        ),
        migrations.AddConstraint(
            model_name="returnline",
            constraint=models.UniqueConstraint(fields=("purchase_return", "line"), name="uniq_return_line"),
        ),
        migrations.AddConstraint(
            model_name="returnline",
            constraint=models.CheckConstraint(condition=models.Q(("qty__gt", 0)), name="return_line_qty_gt_0"),
        ),
        migrations.RunPython(open_lots_for_existing_balances, migrations.RunPython.noop),
    ]
