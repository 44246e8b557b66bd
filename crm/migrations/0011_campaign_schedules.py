# Reserved for this session's work on issue 11 (each part fills in its own file, so the chain stays linear).
# The campaign service part: the moment from which a schedule's occurrences are run.
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("crm", "0010_campaign_sending")]
    operations = [
        migrations.AddField(
            model_name="campaign",
            name="schedule_from",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
