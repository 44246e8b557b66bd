from django.apps import AppConfig


class WecomSimConfig(AppConfig):
    name = "wecom_sim"
    verbose_name = "WeCom simulator"
    default_auto_field = "django.db.models.BigAutoField"
