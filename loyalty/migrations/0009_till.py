"""Reserved for the loyalty till area (issue 12)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("loyalty", "0008_coupons")]
    operations: list = []
