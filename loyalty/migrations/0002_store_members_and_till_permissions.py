# Store binding (store managers and cashiers see and scan at their own stores only) and the till's permissions.

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("loyalty", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="store",
            name="members",
            field=models.ManyToManyField(
                blank=True,
                help_text="Store managers and cashiers bound to this store.",
                related_name="loyalty_stores",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AlterModelOptions(
            name="store",
            options={
                "ordering": ["code"],
                "permissions": [("all_stores", "Can see and use every store, not only the stores one is bound to")],
            },
        ),
        migrations.AlterModelOptions(
            name="purchase",
            options={"ordering": ["-id"], "permissions": [("use_till", "Can scan cards and redeem rewards at a till")]},
        ),
    ]
