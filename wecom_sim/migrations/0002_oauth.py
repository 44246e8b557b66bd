# Reserved for this session's work on issue 11 (each part fills in its own file, so the chain stays linear).
# WeChat web OAuth: the Official Account app and its single-use codes (wecom_sim/oauth.py).
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("wecom_sim", "0001_initial")]
    operations = [
        migrations.CreateModel(
            name="SimOAuthApp",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("appid", models.CharField(max_length=64, unique=True)),
                ("secret", models.CharField(max_length=128)),
                ("redirect_domain", models.CharField(blank=True, max_length=255)),
                ("code_ttl_seconds", models.IntegerField(default=300)),
                ("corp", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="oauth_apps",
                                           to="wecom_sim.simcorp")),
            ],
        ),
        migrations.CreateModel(
            name="SimOAuthCode",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("code", models.CharField(max_length=64, unique=True)),
                ("scope", models.CharField(max_length=32)),
                ("redirect_uri", models.CharField(max_length=1000)),
                ("state", models.CharField(blank=True, max_length=128)),
                ("created_at", models.DateTimeField()),
                ("expires_at", models.DateTimeField()),
                ("used_at", models.DateTimeField(blank=True, null=True)),
                ("app", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="codes",
                                          to="wecom_sim.simoauthapp")),
                ("shopper", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="oauth_codes",
                                              to="wecom_sim.simshopper")),
            ],
        ),
    ]
