from django.apps import AppConfig


class CrmConfig(AppConfig):
    name = "crm"
    verbose_name = "CRM"
    default_auto_field = "django.db.models.BigAutoField"

    def import_models(self) -> None:
        # Before crm's and loyalty's models are built (crm comes first in INSTALLED_APPS), so the admin's forms see
        # their names as translatable strings: crm/model_names.py.
        from crm.model_names import translate_as_prepared

        translate_as_prepared(("crm", "loyalty"))
        super().import_models()

    def ready(self) -> None:
        from auditlog.signals import pre_log
        from django.db.models.signals import post_migrate

        from crm import checks  # noqa: F401  (registers the deploy checks)
        from crm.api.guards import bound_integer_fields
        from crm.audit import skip_system_writes
        from crm.services.roles import roles_post_migrate

        pre_log.connect(skip_system_writes, dispatch_uid="crm.audit.skip_system_writes")
        post_migrate.connect(roles_post_migrate, dispatch_uid="crm.roles_post_migrate")
        bound_integer_fields()  # an API integer beyond a column's range is a 400, not a DataError
