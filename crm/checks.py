"""System checks of the deployment (`manage.py check --deploy`)."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Tags, Warning, register

# The simulator's admin API key when WECOM_SIM_ADMIN_KEY is not set (crm/settings.py).
DEFAULT_SIM_ADMIN_KEY = "sim-admin"


@register(Tags.security, deploy=True)
def simulator_not_deployed(app_configs, **kwargs) -> list[Warning]:
    """The bundled WeCom simulator answers WeCom's API and drives its fake world to anyone holding its admin key:
    in a deployment it must be off, or at least guarded by a key of its own."""
    if not getattr(settings, "WECOM_SIM_ENABLED", False):
        return []
    if settings.WECOM_SIM.get("ADMIN_KEY") != DEFAULT_SIM_ADMIN_KEY:
        return []
    return [
        Warning(
            "The WeCom simulator is mounted (WECOM_SIM_ENABLED is on) with its default admin key.",
            hint="Unset WECOM_SIM_ENABLED in a production deployment; where the simulator must run, set "
            "WECOM_SIM_ADMIN_KEY to a secret of its own.",
            id="crm.W001",
        )
    ]
