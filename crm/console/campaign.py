"""The campaign page: what the campaign says and to whom, when (its schedule and next occurrences, in
Asia/Shanghai), with which red packet; its runs (one per occurrence), each with its own progress page; a live
progress bar while it sends (htmx polls a fragment until the campaign is done or cancelled); send now, pause,
resume, remind and cancel (a run, or the campaign) through the services, whose refusals are shown as messages
saying why. Also the compose form's preview: the WeChat chat bubble and the audience count, rendered here from
campaign_preview() / campaign_audience() for the admin's add/change form (crm/admin/campaigns.py)."""

from __future__ import annotations

import base64
from datetime import timedelta

from django.contrib import admin, messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_POST

from crm.console.render import permission_required
from crm.errors import ApplicationError, NotFound
from crm.models import Campaign, CampaignRecipient, CampaignRun, LuckyDraw, RedPacketPool
from crm.selectors import campaign_compose as compose
from crm.selectors.campaigns import campaign_get, campaign_progress, campaign_segment_summary
from crm.services import campaign_runs, campaign_schedules, run_control
from crm.services import campaigns as campaign_services
from crm.services.run_control import campaign_cancel, campaign_remind

VIEW_PERMISSION = "crm.view_campaign"
CHANGE_PERMISSION = "crm.change_campaign"
STATUS_LABELS = {
    Campaign.Status.DRAFT: _("Draft"),
    Campaign.Status.SCHEDULED: _("Scheduled"),
    Campaign.Status.RUNNING: _("Sending"),
    Campaign.Status.PAUSED: _("Paused"),
    Campaign.Status.DONE: _("Done"),
    Campaign.Status.CANCELLED: _("Cancelled"),
}
STATUS_VARIANT = {
    Campaign.Status.DRAFT: "",
    Campaign.Status.SCHEDULED: "info",
    Campaign.Status.RUNNING: "primary",
    Campaign.Status.PAUSED: "warning",
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


RUN_STATUS_LABELS = {
    CampaignRun.Status.PLANNING: _("Planning"),
    CampaignRun.Status.SENDING: _("Sending"),
    CampaignRun.Status.PAUSED: _("Paused"),
    CampaignRun.Status.DONE: _("Done"),
    CampaignRun.Status.CANCELLED: _("Cancelled"),
}
RUN_STATUS_VARIANT = {
    CampaignRun.Status.PLANNING: "info",
    CampaignRun.Status.SENDING: "primary",
    CampaignRun.Status.PAUSED: "warning",
    CampaignRun.Status.DONE: "success",
    CampaignRun.Status.CANCELLED: "",
}
RUN_LIVE = (CampaignRun.Status.PLANNING, CampaignRun.Status.SENDING)
# Why a recipient was left out at send time (CampaignRecipient.reason).
REASON_LABELS = {
    CampaignRecipient.Reason.CONSENT_WITHDRAWN: _("Marketing consent withdrawn"),
    CampaignRecipient.Reason.CONTACT_DELETED: _("Contact deleted"),
    CampaignRecipient.Reason.RELATION_GONE: _("No active relation with the sender"),
    CampaignRecipient.Reason.ERASED: _("Contact erased"),
}
WEEKDAYS = [_("Monday"), _("Tuesday"), _("Wednesday"), _("Thursday"), _("Friday"), _("Saturday"), _("Sunday")]
# The largest upload the live preview shows inline (as a data: URL) before it is saved.
PREVIEW_IMAGE_BYTES = 2 * 1024 * 1024


def _poll_every(campaign: Campaign) -> str | None:
    """How often the live block re-reads itself: often while sending or about to, slowly while scheduled for
    later, never for a draft (it changes only when someone schedules it) or a finished campaign."""
    if campaign.status == Campaign.Status.RUNNING:
        return "2s"
    if campaign.runs.filter(status__in=RUN_LIVE).exists():
        return "2s"
    if campaign.status == Campaign.Status.SCHEDULED:
        soon = campaign.scheduled_at is None or campaign.scheduled_at <= timezone.now() + timedelta(minutes=1)
        if campaign.recurrence != Campaign.Recurrence.ONCE:
            soon = False
        return "2s" if soon else "10s"
    if campaign.status == Campaign.Status.PAUSED:
        return "10s"
    return None


def _bar_items(bar: dict) -> list[dict]:
    return [
        {"title": _("Delivered"), "value": bar["delivered"], "color": "bg-green-600", "key": "delivered"},
        {"title": _("Failed"), "value": bar["failed"], "color": "bg-red-600", "key": "failed"},
        {"title": _("Cancelled"), "value": bar["cancelled"], "color": "bg-base-400", "key": "cancelled"},
    ]


def _figures(progress: dict, *, per_run: bool = False) -> list[tuple]:
    figures = [
        ("planned", _("Planned"), progress["planned"]),
        ("sent", _("Sent"), progress["sent"]),
        ("confirmed", _("Confirmed"), progress["confirmed"]),
        ("delivered", _("Delivered"), progress["delivered"]),
        ("failed", _("Failed"), progress["failed"]),
        ("cancelled", _("Cancelled"), progress["cancelled"]),
    ]
    if per_run:
        figures += [
            ("over_quota", _("Over quota"), progress.get("over_quota", 0)),
            ("excluded", _("Excluded"), progress.get("excluded", 0)),
            ("expired", _("Expired"), progress.get("expired", 0)),
        ]
    return figures


def _runs_context(campaign: Campaign) -> dict:
    runs = compose.campaign_runs_list(campaign)
    counts = compose.run_counts(runs)
    return {"runs": [
        {"run": run, "counts": counts.get(run.id, {}), "status_label": RUN_STATUS_LABELS.get(run.status, run.status),
         "status_variant": RUN_STATUS_VARIANT.get(run.status, ""),
         "can_pause": run.status in RUN_LIVE, "can_resume": run.status == CampaignRun.Status.PAUSED,
         "can_cancel": run.status in (*RUN_LIVE, CampaignRun.Status.PAUSED)}
        for run in runs
    ]}


def _progress_context(campaign_id: int) -> dict:
    try:
        progress = campaign_progress(campaign_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    campaign = progress["campaign"]
    return {
        "campaign": campaign,
        "progress": progress,
        "progress_url": reverse("console:campaign-progress", args=[campaign.id]),
        "status_label": STATUS_LABELS.get(campaign.status, campaign.status),
        "status_variant": STATUS_VARIANT.get(campaign.status, ""),
        "poll_every": _poll_every(campaign),
        "bar_items": _bar_items(progress["bar"]),
        "figures": _figures(progress),
        "schedule": schedule_summary(campaign),
        **_runs_context(campaign),
    }


def _run_context(campaign: Campaign, run: CampaignRun) -> dict:
    progress = compose.run_live_progress(run)
    return {
        "campaign": campaign,
        "run": run,
        "progress": {**progress, "final": run.status in (CampaignRun.Status.DONE, CampaignRun.Status.CANCELLED)},
        "progress_url": reverse("console:campaign-run-progress", args=[campaign.id, run.id]),
        "status_label": RUN_STATUS_LABELS.get(run.status, run.status),
        "status_variant": RUN_STATUS_VARIANT.get(run.status, ""),
        "poll_every": "2s" if run.status in RUN_LIVE else None,
        "bar_items": _bar_items(progress["bar"]),
        "figures": _figures(progress, per_run=True),
        "excluded_reasons": [(str(REASON_LABELS.get(reason, reason)), n)
                             for reason, n in sorted(progress.get("excluded_by_reason", {}).items()) if n],
        "run_row": {"can_pause": run.status in RUN_LIVE, "can_resume": run.status == CampaignRun.Status.PAUSED,
                    "can_cancel": run.status in (*RUN_LIVE, CampaignRun.Status.PAUSED)},
    }


def schedule_summary(campaign: Campaign) -> str:
    """The schedule in words, Asia/Shanghai: "Every Friday at 20:00", "On the 11th of each month at 10:00"."""
    at = campaign.recur_time.strftime("%H:%M") if campaign.recur_time else "—"
    until = ""
    if campaign.recur_until:
        until = " " + str(_("until %(date)s") % {"date": timezone.localtime(campaign.recur_until).strftime(
            "%Y-%m-%d %H:%M")})
    if campaign.recurrence == Campaign.Recurrence.WEEKLY:
        day = WEEKDAYS[campaign.recur_weekday] if campaign.recur_weekday is not None else "—"
        return str(_("Every %(day)s at %(time)s") % {"day": day, "time": at}) + until
    if campaign.recurrence == Campaign.Recurrence.MONTHLY:
        return str(_("On day %(day)s of each month at %(time)s") % {"day": campaign.recur_day or "—",
                                                                   "time": at}) + until
    if campaign.scheduled_at:
        return str(_("Once, at %(at)s") % {"at": timezone.localtime(campaign.scheduled_at).strftime("%Y-%m-%d %H:%M")})
    return str(_("Not scheduled: a draft, sent when you press Send now."))


def campaign_occurrences(campaign: Campaign, count: int = 3) -> list:
    return compose.next_occurrences(campaign, after=timezone.now(), count=count)


# --- the compose form's preview ------------------------------------------------------------------------------


def _image_url(campaign: Campaign, upload=None) -> str:
    if upload is not None and upload.size <= PREVIEW_IMAGE_BYTES:
        upload.seek(0)
        data = base64.b64encode(upload.read()).decode()
        upload.seek(0)
        return f"data:{upload.content_type or 'image/png'};base64,{data}"
    if campaign.pk and campaign.image:
        return reverse("console:campaign-image", args=[campaign.pk])
    return ""


def compose_preview_context(campaign: Campaign, *, upload=None, errors=None) -> dict:
    """What the compose form's preview shows: the chat bubble, the audience count, the next occurrences."""
    groups = campaign.target in (Campaign.Target.GROUPS, Campaign.Target.VIP_GROUPS)
    bubble = {
        "sender": str(_("Group owner") if groups else _("Your staff member")),
        "text": campaign.text or "",
        "attachment": campaign.attachment,
        "link": {"title": campaign.link_title, "desc": campaign.link_desc, "url": campaign.link_url},
        "image_url": _image_url(campaign, upload),
        "miniprogram": {"title": campaign.miniprogram_title, "appid": campaign.miniprogram_appid,
                        "page": campaign.miniprogram_page},
    }
    try:
        given = campaign_services.campaign_preview(campaign)
    except (ApplicationError, ValueError):  # a half-filled form: show what the fields say
        given = {}
    card = given.get("attachment") or {}
    bubble["text"] = given.get("text", bubble["text"]) or ""
    bubble["attachment"] = card.get("type", bubble["attachment"]) or ""
    if card.get("type") == "link":
        bubble["link"].update(title=card.get("title", ""), desc=card.get("desc", ""), url=card.get("url", ""),
                              host=card.get("host", ""))
    elif card.get("type") == "miniprogram":
        bubble["miniprogram"].update(title=card.get("title", ""), appid=card.get("appid", ""),
                                     page=card.get("page", ""), cover=bubble["image_url"])
    bubble["link_appended"] = given.get("link_appended", "")
    bubble["avatar"] = (bubble["sender"] or "?")[:1].upper()
    try:
        audience = campaign_services.campaign_audience(campaign)
        count = int(audience.get("count") or 0)
        kind = audience.get("kind", "customers")
        if kind == "groups":
            audience_text = ngettext("%(n)s group", "%(n)s groups", count) % {"n": f"{count:,}"}
        else:
            audience_text = ngettext("%(n)s customer", "%(n)s customers", count) % {"n": f"{count:,}"}
    except ApplicationError as exc:
        count, kind, audience_text = None, "", exc.message
    return {
        "bubble": bubble,
        "audience": {"count": count, "kind": kind, "text": audience_text},
        "occurrences": campaign_occurrences(campaign),
        "schedule": schedule_summary(campaign),
        "errors": errors or {},
    }


@require_POST
@permission_required(VIEW_PERMISSION)
def campaign_compose_preview(request: HttpRequest) -> HttpResponse:
    """The preview of the compose form as it stands (posted by its JS, debounced): writes nothing."""
    from crm.admin.campaigns import CampaignForm

    instance = Campaign()
    campaign_id = request.POST.get("campaign_id") or request.GET.get("campaign")
    if campaign_id and str(campaign_id).isdigit():
        instance = Campaign.objects.filter(pk=int(campaign_id)).first() or Campaign()
    form = CampaignForm(request.POST, request.FILES, instance=instance)
    form.is_valid()
    fields = form.service_fields(getattr(form, "cleaned_data", {}))
    draft = Campaign(
        pk=instance.pk, image=instance.image, target=fields["target"], attachment=fields["attachment"],
        recurrence=fields["recurrence"], saved_segment_id=fields["saved_segment_id"],
        **{name: fields[name] for name in (
            "name", "text", "link_title", "link_url", "link_desc", "miniprogram_appid", "miniprogram_page",
            "miniprogram_title", "segment", "group_chat_ids", "scheduled_at", "recur_weekday", "recur_day",
            "recur_time", "recur_until")},
    )
    upload = request.FILES.get("image") if fields["attachment"] in ("image", "miniprogram") else None
    errors = {name: [str(e) for e in errs] for name, errs in form.errors.items()}
    context = {"preview": compose_preview_context(draft, upload=upload, errors=errors)}
    return _render(request, "console/campaign_preview.html", context)


@require_GET
@permission_required(VIEW_PERMISSION)
def campaign_image(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """The campaign's uploaded image, for its thumbnail (media is not served publicly)."""
    campaign = _campaign(campaign_id)
    if not campaign.image:
        raise Http404("No image.")
    from django.http import FileResponse

    return FileResponse(campaign.image.open("rb"))


# --- pages ---------------------------------------------------------------------------------------------------


def _segment_summary(segment: dict) -> dict:
    """The filter language's tree in words (the old flat shape is converted on validation, so both read)."""
    if any(key in segment for key in ("field", "all", "any", "not")):
        lines = compose.segment_tree_summary(segment)
        return {"lines": lines, "everyone": not lines}
    return campaign_segment_summary(segment)


def _detail_context(request: HttpRequest, campaign: Campaign) -> dict:
    pool = getattr(campaign, "red_packet_pool", None)
    draw = LuckyDraw.objects.filter(campaign=campaign).first()
    editable = campaign.status in (Campaign.Status.DRAFT, Campaign.Status.SCHEDULED)
    recurring = campaign.recurrence != Campaign.Recurrence.ONCE
    segment = campaign.saved_segment.definition if campaign.saved_segment_id else (campaign.segment or {})
    return {
        "title": campaign.name,
        "subtitle": _("Campaign #%(id)s") % {"id": campaign.id},
        "segment": _segment_summary(segment),
        "groups": compose.groups_by_chat_id(campaign.group_chat_ids) if campaign.target == "groups" else [],
        "pool": pool,
        "pool_view": pool and {
            "budget": yuan(pool.budget_fen), "min": yuan(pool.min_fen), "max": yuan(pool.max_fen),
            "mode": POOL_MODE_LABELS.get(pool.mode, pool.mode),
            "status": POOL_STATUS_LABELS.get(pool.status, pool.status),
        },
        "draw": draw,
        "can_change": request.user.has_perm(CHANGE_PERMISSION),
        "editable": editable,
        "recurring": recurring,
        "can_launch": editable,  # a recurring campaign's "Send now" is an extra occurrence
        "can_pause_campaign": recurring and campaign.status == Campaign.Status.SCHEDULED,
        "can_resume_campaign": recurring and campaign.status == Campaign.Status.PAUSED,
        "edit_url": reverse("admin:crm_campaign_change", args=[campaign.id]),
        "schedule": schedule_summary(campaign),
        "occurrences": campaign_occurrences(campaign) if campaign.status in (
            Campaign.Status.DRAFT, Campaign.Status.SCHEDULED) else [],
        "preview": compose_preview_context(campaign),
    }


@require_GET
@permission_required(VIEW_PERMISSION)
def campaign_detail(request: HttpRequest, campaign_id: int) -> HttpResponse:
    campaign = _campaign(campaign_id)
    context = _progress_context(campaign.id)
    context.update(_detail_context(request, campaign))
    return _render(request, "console/campaign_detail.html", context)


@require_GET
@permission_required(VIEW_PERMISSION)
def campaign_progress_fragment(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """The live block alone, for htmx to swap in, with the status, times and runs out of band."""
    context = {**_progress_context(campaign_id), "oob": True, "can_change": request.user.has_perm(CHANGE_PERMISSION)}
    return _render(request, "console/campaign_progress.html", context)


def _run(campaign: Campaign, run_id: int) -> CampaignRun:
    run = CampaignRun.objects.filter(campaign=campaign, id=run_id).first()
    if run is None:
        raise Http404("No such run of this campaign.")
    return run


@require_GET
@permission_required(VIEW_PERMISSION)
def campaign_run_detail(request: HttpRequest, campaign_id: int, run_id: int) -> HttpResponse:
    """One occurrence's own page: the campaign page's progress block for this run's recipients and results."""
    campaign = _campaign(campaign_id)
    run = _run(campaign, run_id)
    context = _run_context(campaign, run)
    occurrence = timezone.localtime(run.occurrence).strftime("%Y-%m-%d %H:%M")
    context.update(
        title=campaign.name,
        subtitle=_("Run of %(at)s (Asia/Shanghai)") % {"at": occurrence},
        occurrence=occurrence,
        can_change=request.user.has_perm(CHANGE_PERMISSION),
        preview=compose_preview_context(campaign),
    )
    return _render(request, "console/campaign_run.html", context)


@require_GET
@permission_required(VIEW_PERMISSION)
def campaign_run_progress_fragment(request: HttpRequest, campaign_id: int, run_id: int) -> HttpResponse:
    campaign = _campaign(campaign_id)
    context = {**_run_context(campaign, _run(campaign, run_id)), "oob": True,
               "can_change": request.user.has_perm(CHANGE_PERMISSION)}
    return _render(request, "console/campaign_progress.html", context)


def _act(request: HttpRequest, campaign_id: int, action, *, to_run: int | None = None) -> HttpResponse:
    campaign = _campaign(campaign_id)
    try:
        action(request, campaign)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    if to_run is not None:
        return redirect("console:campaign-run", campaign_id=campaign.id, run_id=to_run)
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


@require_POST
@permission_required(CHANGE_PERMISSION)
def campaign_launch_view(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """Send now: the one-off campaign's run starts (planning on the pushes queue, then the senders)."""
    def launch(request: HttpRequest, campaign: Campaign) -> None:
        campaign_runs.campaign_launch(campaign.id)
        messages.success(request, _("Sending now: the run is being planned."))

    return _act(request, campaign_id, launch)


@require_POST
@permission_required(CHANGE_PERMISSION)
def campaign_pause_view(request: HttpRequest, campaign_id: int) -> HttpResponse:
    def pause(request: HttpRequest, campaign: Campaign) -> None:
        campaign_schedules.campaign_pause(campaign.id)
        messages.success(request, _("Paused: no new occurrence starts until you resume."))

    return _act(request, campaign_id, pause)


@require_POST
@permission_required(CHANGE_PERMISSION)
def campaign_resume_view(request: HttpRequest, campaign_id: int) -> HttpResponse:
    def resume(request: HttpRequest, campaign: Campaign) -> None:
        campaign_schedules.campaign_resume(campaign.id)
        messages.success(request, _("Resumed: the next occurrences run as scheduled."))

    return _act(request, campaign_id, resume)


RUN_ACTIONS = {
    "pause": ("run_pause", _("Run paused: nothing more is sent until you resume it.")),
    "resume": ("run_resume", _("Run resumed.")),
    "cancel": ("run_cancel", _("Run cancelled: nothing more is sent for this occurrence.")),
}


@require_POST
@permission_required(CHANGE_PERMISSION)
def campaign_run_action(request: HttpRequest, campaign_id: int, run_id: int, action: str) -> HttpResponse:
    if action not in RUN_ACTIONS:
        raise Http404("No such action.")
    name, done = RUN_ACTIONS[action]
    back_to_run = request.POST.get("next") == "run"

    def act(request: HttpRequest, campaign: Campaign) -> None:
        run = _run(campaign, run_id)
        getattr(run_control, name)(run.id)
        messages.success(request, done)

    return _act(request, campaign_id, act, to_run=run_id if back_to_run else None)
