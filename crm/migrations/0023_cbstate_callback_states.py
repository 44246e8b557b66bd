"""Callbacks tracked to their effect: received -> routed -> applied | failed.

The old `processed` meant "a handler took it" (routed), and its effect ran in an untracked task. Those events
become `applied` (applied_at = routed_at = the old processed_at): their effect ran, or was retried to exhaustion,
long before this migration, and re-applying the whole history would re-read WeCom for every event ever received.
`failed` stays failed (failed at routing: routed_at unset) and `received` stays received."""

from django.db import migrations, models
from django.db.models import F


def forwards(apps, schema_editor):
    CallbackEvent = apps.get_model("crm", "CallbackEvent")
    CallbackEvent.objects.filter(status="processed").update(
        status="applied", routed_at=F("applied_at")
    )


def backwards(apps, schema_editor):
    CallbackEvent = apps.get_model("crm", "CallbackEvent")
    CallbackEvent.objects.filter(status__in=["routed", "applied"]).update(status="processed")
    # A failed apply was a processed event in the old scheme (its routing had succeeded).
    CallbackEvent.objects.filter(status="failed", routed_at__isnull=False).update(status="processed")


class Migration(migrations.Migration):

    dependencies = [
        ("crm", "0022_draws_group_draws"),
    ]

    operations = [
        migrations.RenameField("callbackevent", "processed_at", "applied_at"),
        migrations.AddField(
            model_name="callbackevent",
            name="routed_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="callbackevent",
            name="next_attempt_at",
            field=models.DateTimeField(
                blank=True, null=True,
                help_text="When a failed event is retried automatically; empty once out of attempts.",
            ),
        ),
        migrations.AlterField(
            model_name="callbackevent",
            name="status",
            field=models.CharField(
                choices=[("received", "Received"), ("routed", "Routed"), ("applied", "Applied"), ("failed", "Failed")],
                default="received", max_length=16,
            ),
        ),
        migrations.AlterField(
            model_name="callbackevent",
            name="attempts",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AlterField(
            model_name="callbackevent",
            name="error",
            field=models.TextField(blank=True, help_text="Why the last attempt failed (type: message)."),
        ),
        migrations.AlterModelOptions(
            name="callbackevent",
            options={"ordering": ["-id"],
                     "permissions": [("replay_callbackevent", "Can replay a failed WeCom callback")]},
        ),
        migrations.RunPython(forwards, backwards),
    ]
