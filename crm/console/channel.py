"""The channel page: the "contact me" QR to download and print (PNG, SVG), adds per day over the last 30 days,
and the adds with their attribution (which staff member the customer added through it, and when)."""

from __future__ import annotations

import io
import json

import segno
from django.contrib.auth.decorators import permission_required
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.translation import gettext as _

from crm.console.render import admin_url, console_render, page_of
from crm.models.channels import Channel
from crm.selectors.channel_page import channel_page_adds, channel_page_channel, channel_page_daily_adds

CHART_DAYS = 30
# Print size: 10 px modules give a ~450 px PNG for a typical URL; SVG scales to any size anyway.
QR_SCALE = 10
QR_BORDER = 4


def _channel_or_404(channel_id: int) -> Channel:
    channel = channel_page_channel(channel_id)
    if channel is None:
        raise Http404(_("No such channel."))
    return channel


def _qr(channel: Channel) -> segno.QRCode:
    """The QR of the channel's contact-way link (WeCom's qr_code); 404 while WeCom has not given one yet."""
    if not channel.qr_code:
        raise Http404(_("This channel has no QR code yet: it is still being registered with WeCom."))
    return segno.make(channel.qr_code, error="m", micro=False)


@permission_required("crm.view_channel", raise_exception=True)
def channel_page(request: HttpRequest, channel_id: int) -> HttpResponse:
    channel = _channel_or_404(channel_id)
    daily = channel_page_daily_adds(channel, days=CHART_DAYS)
    chart = {
        "labels": [d["day"].strftime("%m-%d") for d in daily],
        "datasets": [{
            "label": str(_("Adds")),
            "data": [d["adds"] for d in daily],
            "backgroundColor": "var(--color-primary-600)",
        }],
    }
    context = {
        "channel": channel,
        "staff": list(channel.staff.all()),
        "qr_svg": segno.make(channel.qr_code, error="m").svg_inline(scale=5, border=QR_BORDER, omitsize=True)
        if channel.qr_code else None,
        "chart_json": json.dumps(chart),
        "chart_days": CHART_DAYS,
        "adds_in_chart": sum(d["adds"] for d in daily),
        "adds": page_of(request, channel_page_adds(channel)),
        "admin_change_url": admin_url("admin:crm_channel_change", channel.pk),
        "png_url": reverse("console:channel-qr", args=[channel.pk, "png"]),
        "svg_url": reverse("console:channel-qr", args=[channel.pk, "svg"]),
    }
    return console_render(request, "console/channel.html", context, title=channel.name)


@permission_required("crm.view_channel", raise_exception=True)
def channel_qr_download(request: HttpRequest, channel_id: int, fmt: str) -> HttpResponse:
    channel = _channel_or_404(channel_id)
    qr = _qr(channel)
    buf = io.BytesIO()
    if fmt == "png":
        qr.save(buf, kind="png", scale=QR_SCALE, border=QR_BORDER)
        content_type = "image/png"
    elif fmt == "svg":
        qr.save(buf, kind="svg", scale=QR_SCALE, border=QR_BORDER, title=channel.name)
        content_type = "image/svg+xml"
    else:
        raise Http404(_("The QR comes as PNG or SVG."))
    response = HttpResponse(buf.getvalue(), content_type=content_type)
    # ASCII-only filename: the state is [A-Za-z0-9_.:-], ":" is not allowed in file names on every system.
    filename = f"channel-{channel.state.replace(':', '-')}-qr.{fmt}"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
