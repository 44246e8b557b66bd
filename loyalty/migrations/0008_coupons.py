"""Coupons area (issue 12): the rewards catalogue's fields (kind, limits, validity, eligible tiers) and Coupon."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("loyalty", "0007_tiers")]

    operations = [
        migrations.AddField(
            model_name="reward",
            name="description",
            field=models.CharField(blank=True, default="", max_length=256),
        ),
        migrations.AddField(
            model_name="reward",
            name="eligible_tiers",
            field=models.ManyToManyField(
                blank=True, help_text="Empty: every tier.", related_name="rewards", to="loyalty.tier"
            ),
        ),
        migrations.AddField(
            model_name="reward",
            name="kind",
            field=models.CharField(
                choices=[("coupon", "Coupon"), ("gift", "Gift"), ("discount", "Discount")],
                default="gift",
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="reward",
            name="per_customer_limit",
            field=models.PositiveIntegerField(blank=True, help_text="Empty: no limit per card.", null=True),
        ),
        migrations.AddField(
            model_name="reward",
            name="valid_days",
            field=models.PositiveIntegerField(blank=True, help_text="Coupon valid N days after issue.", null=True),
        ),
        migrations.AddField(
            model_name="reward",
            name="valid_from",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="reward",
            name="valid_until",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="reward",
            name="value_fen",
            field=models.PositiveIntegerField(blank=True, help_text="Face value of a coupon or discount.", null=True),
        ),
        migrations.CreateModel(
            name="Coupon",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("code", models.CharField(max_length=32, unique=True)),
                (
                    "source",
                    models.CharField(
                        choices=[
                            ("points", "Points"),
                            ("campaign", "Campaign"),
                            ("journey", "Journey"),
                            ("console", "Console"),
                        ],
                        max_length=16,
                    ),
                ),
                ("idempotency_key", models.CharField(max_length=160, unique=True)),
                ("issued_at", models.DateTimeField(auto_now_add=True)),
                ("expires_at", models.DateTimeField(blank=True, null=True)),
                ("redeemed_at", models.DateTimeField(blank=True, null=True)),
                (
                    "card",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT, related_name="coupons", to="loyalty.card"
                    ),
                ),
                (
                    "redeemed_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "redeemed_store",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="coupons_redeemed",
                        to="loyalty.store",
                    ),
                ),
                (
                    "redemption",
                    models.OneToOneField(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="coupon",
                        to="loyalty.redemption",
                    ),
                ),
                (
                    "reward",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT, related_name="coupons", to="loyalty.reward"
                    ),
                ),
            ],
            options={
                "ordering": ["-id"],
                "indexes": [models.Index(fields=["card", "reward"], name="coupon_card_reward")],
            },
        ),
    ]
