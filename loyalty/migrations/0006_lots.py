"""Reserved for the loyalty lots area (issue 12)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("loyalty", "0005_earning")]
    operations: list = []
