# Reserved for this session's work on issue 11 (segment conditions over loyalty data), so the chain stays linear.
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("loyalty", "0003_product")]
    operations = []
