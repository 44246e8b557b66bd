# The recipients' write path (issue 11, bench push_fanout_1m): no database constraint on campaign, run, sender and
# mass_message (their deferred checks cost ~1.5 s at each 50k-recipient chunk's COMMIT), and no single-column index
# on run, contact and mass_message ((run, contact), (contact, quota_day), (mass_message, external_userid) lead with
# them).
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("crm", "0011_campaign_schedules")]
    operations = [
        migrations.AlterField(
            model_name="campaignrecipient",
            name="campaign",
            field=models.ForeignKey(
                db_constraint=False, on_delete=django.db.models.deletion.CASCADE, related_name="recipients",
                to="crm.campaign",
            ),
        ),
        migrations.AlterField(
            model_name="campaignrecipient",
            name="contact",
            field=models.ForeignKey(
                db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="campaign_recipients",
                to="crm.contact",
            ),
        ),
        migrations.AlterField(
            model_name="campaignrecipient",
            name="mass_message",
            field=models.ForeignKey(
                blank=True, db_constraint=False, db_index=False, null=True,
                on_delete=django.db.models.deletion.SET_NULL, related_name="recipients", to="crm.massmessage",
            ),
        ),
        migrations.AlterField(
            model_name="campaignrecipient",
            name="run",
            field=models.ForeignKey(
                blank=True, db_constraint=False, db_index=False, null=True,
                on_delete=django.db.models.deletion.CASCADE, related_name="recipients", to="crm.campaignrun",
            ),
        ),
        migrations.AlterField(
            model_name="campaignrecipient",
            name="sender",
            field=models.ForeignKey(
                blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.PROTECT,
                related_name="+", to="crm.staff",
            ),
        ),
    ]
