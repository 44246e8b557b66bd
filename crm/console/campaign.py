"""The campaign page: what the campaign says and to whom, when, with which red packet; a live progress bar while
it sends (htmx polls a fragment until the campaign is done or cancelled); remind and cancel through the services,
whose refusals (e.g. cancelling a finished campaign) are shown as messages saying why."""

from __future__ import annotations

from datetime import timedelta
from functools import wraps

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_POST

from crm.errors import ApplicationError, NotFound
from crm.models import Campaign, LuckyDraw, RedPacketPool
from crm.selectors.campaigns import campaign_get, campaign_progress, campaign_segment_summary
from crm.services.run_control import campaign_cancel, campaign_remind

VIEW_PERMISSION = "crm.view_campaign"
CHANGE_PERMISSION = "crm.change_campaign"
STATUS_LABELS = {
    Campaign.Status.DRAFT: _("Draft"),
    Campaign.Status.SCHEDULED: _("Scheduled"),
    Campaign.Status.RUNNING: _("Sending"),
    Campaign.Status.DONE: _("Done"),
    Campaign.Status.CANCELLED: _("Cancelled"),
}
STATUS_VARIANT = {
    Campaign.Status.DRAFT: "",
    Campaign.Status.SCHEDULED: "info",
    Campaign.Status.RUNNING: "primary",
    Campaign.Status.DONE: "success",
    Campaign.Status.CANCELLED: "warning",
}
POOL_STATUS_LABELS = {
    RedPacketPool.Status.DRAFT: _("Opens at launch"),
    RedPacketPool.Status.ACTIVE: _("Open"),
    RedPacketPool.Status.REFUNDED: _("Expired and refunded"),
    RedPacketPool.Status.CANCELLED: _("Cancelled"),
}
POOL_MODE_LABELS = {RedPacketPool.Mode.LUCKY: _("Lucky (random amounts)"), RedPacketPool.Mode.FIXED: _("Fixed amount")}


def permission_required(perm: str):
    def decorator(view):
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.has_perm(perm):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def yuan(fen: int | None) -> str:
    """Integer fen as yuan for people to read: 12345 -> "¥123.45"."""
    if fen is None:
        return "—"
    return f"¥{fen // 100:,}.{fen % 100:02d}"


def _render(request: HttpRequest, template: str, context: dict, status: int = 200) -> TemplateResponse:
    request.current_app = admin.site.name
    return TemplateResponse(request, template, {**admin.site.each_context(request), **context}, status=status)


def _campaign(campaign_id: int) -> Campaign:
    try:
        return campaign_get(campaign_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc


def _poll_every(campaign: Campaign) -> str | None:
    """How often the live block re-reads itself: often while sending or about to, slowly while scheduled for
    later, never for a draft (it changes only when someone schedules it) or a finished campaign."""
    if campaign.status == Campaign.Status.RUNNING:
        return "2s"
    if campaign.status == Campaign.Status.SCHEDULED:
        soon = campaign.scheduled_at is None or campaign.scheduled_at <= timezone.now() + timedelta(minutes=1)
        return "2s" if soon else "10s"
    return None


def _progress_context(campaign_id: int) -> dict:
    try:
        progress = campaign_progress(campaign_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    campaign = progress["campaign"]
    bar = progress["bar"]
    return {
        "campaign": campaign,
        "progress": progress,
        "status_label": STATUS_LABELS.get(campaign.status, campaign.status),
        "status_variant": STATUS_VARIANT.get(campaign.status, ""),
        "poll_every": _poll_every(campaign),
        "bar_items": [
            {"title": _("Delivered"), "value": bar["delivered"], "color": "bg-green-600", "key": "delivered"},
            {"title": _("Failed"), "value": bar["failed"], "color": "bg-red-600", "key": "failed"},
            {"title": _("Cancelled"), "value": bar["cancelled"], "color": "bg-base-400", "key": "cancelled"},
        ],
        "figures": [
            ("planned", _("Planned"), progress["planned"]),
            ("sent", _("Sent"), progress["sent"]),
            ("confirmed", _("Confirmed"), progress["confirmed"]),
            ("delivered", _("Delivered"), progress["delivered"]),
            ("failed", _("Failed"), progress["failed"]),
            ("cancelled", _("Cancelled"), progress["cancelled"]),
        ],
    }


@require_GET
@permission_required(VIEW_PERMISSION)
def campaign_detail(request: HttpRequest, campaign_id: int) -> HttpResponse:
    campaign = _campaign(campaign_id)
    pool = getattr(campaign, "red_packet_pool", None)
    draw = LuckyDraw.objects.filter(campaign=campaign).first()
    context = _progress_context(campaign.id)
    context.update(
        title=campaign.name,
        subtitle=_("Campaign #%(id)s") % {"id": campaign.id},
        segment=campaign_segment_summary(campaign.segment or {}),
        pool=pool,
        pool_view=pool and {
            "budget": yuan(pool.budget_fen), "min": yuan(pool.min_fen), "max": yuan(pool.max_fen),
            "mode": POOL_MODE_LABELS.get(pool.mode, pool.mode),
            "status": POOL_STATUS_LABELS.get(pool.status, pool.status),
        },
        draw=draw,
        can_change=request.user.has_perm(CHANGE_PERMISSION),
    )
    return _render(request, "console/campaign_detail.html", context)


@require_GET
@permission_required(VIEW_PERMISSION)
def campaign_progress_fragment(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """The live block alone, for htmx to swap in, with the status and times out of band."""
    return _render(request, "console/campaign_progress.html", {**_progress_context(campaign_id), "oob": True})


def _act(request: HttpRequest, campaign_id: int, action) -> HttpResponse:
    campaign = _campaign(campaign_id)
    try:
        action(request, campaign)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("console:campaign-detail", campaign_id=campaign.id)


@require_POST
@permission_required(CHANGE_PERMISSION)
def campaign_remind_view(request: HttpRequest, campaign_id: int) -> HttpResponse:
    def remind(request: HttpRequest, campaign: Campaign) -> None:
        reminded = campaign_remind(campaign.id)
        if reminded:
            text = ngettext("Reminded %(n)d sender to confirm.", "Reminded %(n)d senders to confirm.", reminded)
            messages.success(request, text % {"n": reminded})
        else:
            messages.info(request, _("No sender is left to remind (all confirmed, or reminded 3 times today)."))

    return _act(request, campaign_id, remind)


@require_POST
@permission_required(CHANGE_PERMISSION)
def campaign_cancel_view(request: HttpRequest, campaign_id: int) -> HttpResponse:
    def cancel(request: HttpRequest, campaign: Campaign) -> None:
        campaign_cancel(campaign.id)
        messages.success(request, _("Campaign cancelled: nothing more is sent."))

    return _act(request, campaign_id, cancel)
