"""Reserved for the loyalty earning area (issue 12)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("loyalty", "0004_loyalty_segments")]
    operations: list = []
