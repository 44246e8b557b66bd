# The custom permissions (export, erase, handover) and the role groups: admin, marketing, store_manager, cashier.

from django.db import migrations


def roles_create(apps, schema_editor):
    # Permissions are made by post_migrate, after every migration: make them now so the groups can hold them.
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    from auditlog.context import disable_auditlog

    from crm.services.roles import roles_ensure

    with disable_auditlog():
        roles_ensure(registry=apps)


def roles_delete(apps, schema_editor):
    from crm.services.roles import ROLES

    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("crm", "0005_dashboard_rollups"),
        ("loyalty", "0002_store_members_and_till_permissions"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="contact",
            options={
                "ordering": ["-id"],
                "permissions": [
                    ("export_contact", "Can export contacts (CSV list and a person's data)"),
                    ("erase_contact", "Can erase a contact's personal data"),
                ],
            },
        ),
        migrations.AlterModelOptions(
            name="handover",
            options={
                "ordering": ["-id"],
                "permissions": [("handover_staff", "Can hand a staff member's customers and groups over")],
            },
        ),
        migrations.RunPython(roles_create, roles_delete),
    ]
