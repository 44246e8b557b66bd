"""The console-wide money banner: a red-packet pool out of balance, or the scheduled reconciliation not running."""

from __future__ import annotations

from django import template
from django.conf import settings
from django.urls import reverse
from django.utils.translation import gettext as _

from crm.console.render import yuan
from crm.selectors.money import pools_out_of_balance, pools_unwatched

register = template.Library()


@register.simple_tag(takes_context=True)
def money_alerts(context) -> list[dict]:
    """[{text, url}] for a console user who may see pools; [] for anyone else (and off the console)."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.has_perm("crm.view_redpacketpool"):
        return []
    alerts = [
        {
            "text": _("Money out of balance: red-packet pool #%(id)s differs from its budget by %(amount)s.")
            % {"id": row["id"], "amount": yuan(row["reconcile_difference_fen"])},
            "url": reverse("console:pool", args=[row["id"]]),
        }
        for row in pools_out_of_balance(limit=5)
    ]
    stale = settings.REDPACKET_RECONCILE_STALE_SECONDS
    alerts += [
        {
            "text": _("Red-packet pool #%(id)s has not been reconciled for over %(minutes)s minutes: is beat running?")
            % {"id": pool_id, "minutes": stale // 60},
            "url": reverse("console:pool", args=[pool_id]),
        }
        for pool_id in pools_unwatched(stale, limit=5)
    ]
    return alerts
