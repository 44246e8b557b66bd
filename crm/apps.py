from django.apps import AppConfig


class CrmConfig(AppConfig):
    name = "crm"
    verbose_name = "CRM"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from auditlog.signals import pre_log
        from django.db.models.signals import post_migrate

        from crm import checks  # noqa: F401  (registers the deploy checks)
        from crm.audit import skip_system_writes
        from crm.services.roles import roles_post_migrate

        pre_log.connect(skip_system_writes, dispatch_uid="crm.audit.skip_system_writes")
        post_migrate.connect(roles_post_migrate, dispatch_uid="crm.roles_post_migrate")
