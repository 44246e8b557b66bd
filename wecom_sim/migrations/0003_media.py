# Reserved for this session's work on issue 11 (each part fills in its own file, so the chain stays linear).
# The campaign service part: temporary media (media/upload), valid 3 days.
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("wecom_sim", "0002_oauth")]
    operations = [
        migrations.CreateModel(
            name="SimMedia",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("media_id", models.CharField(max_length=64, unique=True)),
                ("type", models.CharField(max_length=8)),
                ("filename", models.CharField(max_length=255)),
                ("size", models.PositiveIntegerField()),
                ("sha256", models.CharField(max_length=64)),
                ("content_type", models.CharField(blank=True, max_length=128)),
                ("created_at", models.DateTimeField()),
                (
                    "corp",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="media", to="wecom_sim.simcorp"
                    ),
                ),
            ],
        ),
    ]
