# Mass messages at scale (issue 11): indexes for paging send results, confirmation and the receive quota.
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("wecom_sim", "0003_media")]
    operations = [
        migrations.AddIndex(
            model_name="simmassresult",
            index=models.Index(fields=["message", "userid", "id"], name="wecomsim_massresult_page"),
        ),
        migrations.AddIndex(
            model_name="simmassresult",
            index=models.Index(fields=["chat_id", "status", "send_time"], name="wecomsim_massresult_chat"),
        ),
        migrations.AddIndex(
            model_name="siminboxmessage",
            index=models.Index(fields=["shopper", "kind", "received_at"], name="wecomsim_inbox_quota"),
        ),
        migrations.AddIndex(
            model_name="siminboxmessage",
            index=models.Index(fields=["ref"], name="wecomsim_inbox_ref"),
        ),
        # clockwork.confirm_adds_due looks for half adds waiting for the member every 0.2 s in every served
        # process: without this partial index that is a scan of every friendship (1M in the fan-out bench).
        # Raw SQL (both PostgreSQL and SQLite have partial indexes) keeps SimFriendship's model untouched.
        migrations.RunSQL(
            "CREATE INDEX wecomsim_friend_unconfirmed ON wecom_sim_simfriendship (createtime) WHERE NOT confirmed",
            "DROP INDEX wecomsim_friend_unconfirmed",
        ),
    ]
