"""Reserved for the loyalty coupons area (issue 12)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("loyalty", "0007_tiers")]
    operations: list = []
