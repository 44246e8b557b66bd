# Issue 11, sending: recipients left out at send time get a timeline row of their own kind.
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("crm", "0009_campaign_planning")]
    operations = [
        migrations.AlterField(
            model_name="contactevent",
            name="kind",
            field=models.CharField(
                choices=[
                    ("added", "Added a staff member"),
                    ("half_added", "Added (awaiting staff confirmation)"),
                    ("edited", "Remark or tags edited"),
                    ("deleted_by_staff", "Deleted by staff"),
                    ("deleted_by_customer", "Deleted the staff member"),
                    ("channel", "Attributed to channel"),
                    ("welcome", "Welcome message"),
                    ("joined_group", "Joined a group"),
                    ("left_group", "Left a group"),
                    ("tagged", "Tagged"),
                    ("untagged", "Untagged"),
                    ("vip_invited", "Invited to VIP group"),
                    ("transfer", "Handover"),
                    ("sync_repair", "Repaired by reconciliation"),
                    ("consent", "Consent changed"),
                    ("data_rights", "Data export or erasure"),
                    ("campaign_excluded", "Left out of a campaign at send time"),
                ],
                db_index=True,
                max_length=32,
            ),
        ),
    ]
