"""Reserved for the loyalty tiers area (issue 12)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("loyalty", "0006_lots")]
    operations: list = []
