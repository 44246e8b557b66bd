# Mass-message storage at scale (push_fanout_1m): fewer indexes to write per recipient, and confirmation's UPDATE
# of a task's results kept on their pages (HOT).
import django.db.models.deletion
from django.db import migrations, models


def _fillfactor(value: int):
    def apply(apps, schema_editor):
        # PostgreSQL only (SQLite has no fillfactor): pages keep room for each result's one update at confirmation,
        # so the new row version stays on the page and no index entry is written for it.
        if schema_editor.connection.vendor == "postgresql":
            table = schema_editor.quote_name(apps.get_model("wecom_sim", "SimMassResult")._meta.db_table)
            schema_editor.execute(f"ALTER TABLE {table} SET (fillfactor = {int(value)})")

    return apply


class Migration(migrations.Migration):
    dependencies = [("wecom_sim", "0004_mass_at_scale")]

    operations = [
        migrations.RemoveIndex(model_name="simmassresult", name="wecomsim_massresult_chat"),
        # Both foreign keys lead a composite index already (wecomsim_massresult_page, wecomsim_inbox_quota).
        migrations.AlterField(
            model_name="siminboxmessage",
            name="shopper",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="inbox",
                to="wecom_sim.simshopper",
            ),
        ),
        migrations.AlterField(
            model_name="simmassresult",
            name="message",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="results",
                to="wecom_sim.simmassmessage",
            ),
        ),
        migrations.AddIndex(
            model_name="simmassresult",
            index=models.Index(
                condition=models.Q(chat_id__gt=""), fields=["chat_id"], name="wecomsim_massresult_group"
            ),
        ),
        migrations.RunPython(_fillfactor(45), _fillfactor(100)),
    ]
