"""The bundled WeCom simulator's control API, for the console's demo tools (e.g. "simulate adds" on a channel).

Reached over HTTP only, like WeCom itself (crm never imports wecom_sim), and only when the simulator is mounted
(WECOM_SIM_ENABLED) and the CRM's WeCom base URL points at it: against the real WeCom there is nothing to drive."""

from __future__ import annotations

import secrets

import requests
from django.conf import settings
from django.utils.translation import gettext as _

from crm.errors import ApplicationError
from crm.models.channels import Channel

MAX_SIMULATED_ADDS = 500


def simulator_admin_url() -> str | None:
    """The simulator's control API base (…/wecom-sim/admin/), or None when the CRM is not talking to it."""
    base = settings.WECOM_API_BASE_URL.rstrip("/")
    if not settings.WECOM_SIM_ENABLED or not base.endswith("/wecom-sim/cgi-bin"):
        return None
    return base.removesuffix("cgi-bin") + "admin/"


def channel_simulate_adds(channel_id: int, customers: int = 20, *, seed: int | None = None) -> int:
    """Have `customers` new simulated shoppers scan the channel's contact-me QR in the simulator; returns how many
    added a staff member. The contacts then arrive as WeCom's callbacks do, through /wecom/callback and the worker.
    Each call makes new shoppers (a fresh seed unless one is given)."""
    base = simulator_admin_url()
    if base is None:
        raise ApplicationError(_("The WeCom simulator is not mounted here: only real shoppers add this channel."),
                               code="no_simulator")
    if not 1 <= customers <= MAX_SIMULATED_ADDS:
        raise ApplicationError(_("Simulate between 1 and %(n)d adds at once.") % {"n": MAX_SIMULATED_ADDS},
                               field="customers")
    channel = Channel.objects.filter(pk=channel_id).first()
    if channel is None or not channel.config_id:
        raise ApplicationError(_("This channel has no contact-me QR in WeCom yet."), field="channel",
                               code="no_contact_way")
    body = {"customers": customers, "config_id": channel.config_id,
            "seed": secrets.randbelow(2**31) if seed is None else seed}
    try:
        response = requests.post(base + "scenario/run", json=body, timeout=120,
                                 headers={"X-Sim-Admin-Key": settings.WECOM_SIM["ADMIN_KEY"]})
    except requests.RequestException as exc:
        raise ApplicationError(_("The simulator did not answer: %(error)s") % {"error": exc},
                               code="simulator_unreachable", status_code=503) from exc
    if response.status_code >= 400:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:200]
        raise ApplicationError(_("The simulator refused: %(error)s") % {"error": message}, code="simulator_refused")
    return len(response.json().get("added") or [])
