"""Tiers (issue 12): spend thresholds, rolling-window rules with grace, tier change events and their effects."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("loyalty", "0006_lots")]

    operations = [
        migrations.AddField(
            model_name="card",
            name="tier_below_since",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="tier",
            name="min_spend_fen",
            field=models.PositiveBigIntegerField(
                blank=True,
                default=0,
                help_text="Used when the tier rules' basis is spend.",
                verbose_name="spend threshold (fen)",
            ),
        ),
        migrations.AddField(
            model_name="tierchange",
            name="basis",
            field=models.CharField(blank=True, max_length=8),
        ),
        migrations.AddField(
            model_name="tierchange",
            name="reason",
            field=models.CharField(
                choices=[("upgrade", "Upgrade"), ("downgrade", "Downgrade"), ("manual", "Manual")],
                default="upgrade",
                max_length=10,
                verbose_name="reason",
            ),
        ),
        migrations.AddField(
            model_name="tierchange",
            name="value",
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="tierchange",
            name="window_days",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AlterField(
            model_name="card",
            name="lifetime_points",
            field=models.IntegerField(default=0, help_text="Earned + adjusted points."),
        ),
        migrations.CreateModel(
            name="TierPolicy",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "basis",
                    models.CharField(
                        choices=[("points", "Points earned"), ("spend", "Spend")],
                        default="points",
                        max_length=8,
                        verbose_name="basis",
                    ),
                ),
                (
                    "window_days",
                    models.PositiveIntegerField(
                        default=365,
                        help_text="Rolling window the thresholds count; 0 counts all history.",
                        verbose_name="window (days)",
                    ),
                ),
                (
                    "grace_days",
                    models.PositiveIntegerField(
                        default=30,
                        help_text="How long a card below its tier keeps it before a downgrade.",
                        verbose_name="grace (days)",
                    ),
                ),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={
                "verbose_name": "tier rules",
                "verbose_name_plural": "tier rules",
                "constraints": [models.CheckConstraint(condition=models.Q(("pk", 1)), name="tierpolicy_singleton")],
            },
        ),
        migrations.CreateModel(
            name="TierEffect",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("kind", models.CharField(choices=[("untag", "Untagged VIP"), ("notify", "Notified")], max_length=8)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("sending", "Sending"),
                            ("done", "Done"),
                            ("skipped", "Skipped"),
                            ("failed", "Failed"),
                        ],
                        default="sending",
                        max_length=8,
                    ),
                ),
                ("detail", models.CharField(blank=True, max_length=255)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "change",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT, related_name="effects", to="loyalty.tierchange"
                    ),
                ),
            ],
            options={
                "ordering": ["-id"],
                "constraints": [models.UniqueConstraint(fields=("change", "kind"), name="uniq_tiereffect_change_kind")],
            },
        ),
    ]
