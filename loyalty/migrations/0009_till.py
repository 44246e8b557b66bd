"""Till safety (issue 12): the review queue of scans the velocity rules flagged."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("loyalty", "0008_coupons"), migrations.swappable_dependency(settings.AUTH_USER_MODEL)]
    operations: list = [
        migrations.CreateModel(
            name="ScanReview",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("reasons", models.JSONField(default=list, verbose_name="reasons")),
                (
                    "status",
                    models.CharField(
                        choices=[("pending", "Pending"), ("approved", "Approved"), ("reversed", "Reversed")],
                        default="pending",
                        max_length=8,
                        verbose_name="status",
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True, verbose_name="flagged at")),
                ("decided_at", models.DateTimeField(blank=True, null=True, verbose_name="decided at")),
                (
                    "decided_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="decided by",
                    ),
                ),
                (
                    "purchase",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="review",
                        to="loyalty.purchase",
                        verbose_name="purchase",
                    ),
                ),
                (
                    "reversal",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="loyalty.pointsledger",
                        verbose_name="reversal",
                    ),
                ),
            ],
            options={
                "verbose_name": "scan review",
                "verbose_name_plural": "scan reviews",
                "ordering": ["-created_at"],
                "indexes": [models.Index(fields=["status", "-created_at"], name="loyalty_scanreview_queue")],
            },
        ),
    ]
