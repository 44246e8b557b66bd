"""Channels: WeCom "contact me" QR codes (add_contact_way) whose `state` attributes new contacts."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from time import sleep

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from crm.errors import ApplicationError
from crm.models.channels import Channel
from crm.models.contacts import FollowRelation
from crm.models.staff import Staff
from crm.wecom.client import get_client
from crm.wecom.errors import WeComError

_STATE_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,30}$")


def channel_create(*, name: str, state: str, staff_userids: list[str], welcome_text: str = "",
                   active_from: datetime | None = None, active_until: datetime | None = None) -> Channel:
    """Create a scene-2 (QR) contact way in WeCom for these staff and store its config_id and qr_code.

    Validation happens before WeCom is called, so a refused input never leaves a config behind."""
    name, staff = channel_validate(name=name, state=state, staff_userids=staff_userids)
    _check_active_window(active_from, active_until)
    channel = _channel_create_in_wecom(name, state, staff_userids, staff, welcome_text)
    if active_from or active_until:
        Channel.objects.filter(pk=channel.pk).update(active_from=active_from, active_until=active_until)
        channel.refresh_from_db()
    return channel


def channel_validate(*, name: str, state: str, staff_userids: list[str]) -> tuple[str, list[Staff]]:
    """Refuse what WeCom would refuse (or what would clash), naming the field; returns (name, staff)."""
    name = (name or "").strip()
    if not name:
        raise ApplicationError("A channel needs a name.", field="name")
    if not _STATE_RE.match(state or ""):
        raise ApplicationError("state must be 1-30 characters of letters, digits, - _ . :", field="state")
    if Channel.objects.filter(state=state).exists():
        raise ApplicationError(f"A channel with state {state!r} already exists.", code="duplicate", field="state")
    return name, _channel_staff(staff_userids)


def _check_active_window(active_from: datetime | None, active_until: datetime | None) -> None:
    if active_from and active_until and active_until <= active_from:
        raise ApplicationError("A channel's active window must end after it starts.", field="active_until")


def _channel_staff(staff_userids: list[str]) -> list[Staff]:
    """The staff a contact way may route to: 1-100 known members on the job with customer contact."""
    if not staff_userids:
        raise ApplicationError("A channel needs at least one staff member.", field="staff_userids")
    if len(staff_userids) > 100:
        raise ApplicationError("A multi-person contact way holds at most 100 members.", field="staff_userids")
    staff = list(Staff.objects.filter(userid__in=staff_userids))
    missing = sorted(set(staff_userids) - {s.userid for s in staff})
    if missing:
        raise ApplicationError(f"Unknown staff: {', '.join(missing)}", field="staff_userids")
    unusable = sorted(s.userid for s in staff if not (s.is_active and s.has_customer_contact))
    if unusable:
        raise ApplicationError(
            f"Staff without customer contact or resigned: {', '.join(unusable)}", field="staff_userids"
        )
    return staff


def channel_update(
    channel_id: int, *, name: str, staff_userids: list[str], welcome_text: str = "",
    active_from: datetime | None = None, active_until: datetime | None = None,
) -> Channel:
    """Change a channel (its state, printed in the QR, never changes). A new name or staff list is written to its
    contact way in WeCom first (outside any transaction), so the QR routes to the staff the console shows."""
    channel = Channel.objects.filter(pk=channel_id).first()
    if channel is None:
        raise ApplicationError("No such channel.", code="not_found", field="channel", status_code=404)
    name = (name or "").strip()
    if not name:
        raise ApplicationError("A channel needs a name.", field="name")
    staff = _channel_staff(staff_userids)
    _check_active_window(active_from, active_until)
    current = sorted(channel.staff.values_list("userid", flat=True))
    if channel.config_id and (name != channel.name or sorted(staff_userids) != current):
        try:
            get_client().update_contact_way(channel.config_id, remark=name[:30], user=list(staff_userids))
        except WeComError as exc:
            raise ApplicationError(f"WeCom refused the change: {exc.errmsg}", code=f"wecom_{exc.errcode}",
                                   field="staff_userids") from exc
    with transaction.atomic():
        channel = Channel.objects.select_for_update().get(pk=channel_id)
        channel.name, channel.welcome_text = name, welcome_text
        channel.active_from, channel.active_until = active_from, active_until
        channel.save()
        channel.staff.set(staff)
    return channel


ADD_WAY_ATTEMPTS = 3
FIND_WAY_LOOKUPS = 50  # the newest contact ways looked at for one whose creation went unanswered


def _add_contact_way(name: str, state: str, staff_userids: list[str]) -> tuple[str, str]:
    """The WeCom call: a scene-2 QR contact way -> (config_id, qr_code).

    add_contact_way is not idempotent, so the client never repeats it once WeCom may have acted (a timeout, a
    5xx). Here we find out: a way with our state made by that call is adopted; only when there is none is the
    call made again."""
    client = get_client()
    fields = {"type": 1 if len(staff_userids) == 1 else 2, "scene": 2, "remark": name[:30], "skip_verify": True,
              "state": state, "user": list(staff_userids)}  # fmt: skip
    try:
        for attempt in range(1, ADD_WAY_ATTEMPTS + 1):
            try:
                created = client.add_contact_way(**fields)
                break
            except WeComError as exc:
                if not exc.maybe_applied or attempt == ADD_WAY_ATTEMPTS:
                    raise
                # A call that timed out may still be running in WeCom: give it as long as we gave it, then look.
                sleep(float(settings.WECOM_HTTP_TIMEOUT))
                created = _contact_way_with_state(client, state)
                if created:
                    break
        qr_code = created.get("qr_code") or client.get_contact_way(created["config_id"])["contact_way"].get("qr_code")
    except WeComError as exc:
        raise ApplicationError(f"WeCom refused the contact way: {exc.errmsg}", code=f"wecom_{exc.errcode}") from exc
    return created["config_id"], qr_code or ""


def _contact_way_with_state(client, state: str) -> dict | None:
    """The newest contact way carrying `state` ({config_id, qr_code}), if WeCom has one (list_contact_way's
    default window: the last 90 days)."""
    config_ids, cursor = [], ""
    while True:
        page = client.list_contact_way(**({"cursor": cursor} if cursor else {}), limit=1000)
        config_ids += [w["config_id"] for w in page.get("contact_way", [])]
        cursor = page.get("next_cursor") or ""
        if not cursor:
            break
    for config_id in reversed(config_ids[-FIND_WAY_LOOKUPS:]):
        way = client.get_contact_way(config_id)["contact_way"]
        if way.get("state") == state:
            return {"config_id": config_id, "qr_code": way.get("qr_code")}
    return None


def _channel_create_in_wecom(
    name: str, state: str, staff_userids: list[str], staff: list[Staff], welcome_text: str
) -> Channel:
    config_id, qr_code = _add_contact_way(name, state, staff_userids)
    try:
        with transaction.atomic():
            channel = Channel.objects.create(
                name=name, state=state, config_id=config_id, qr_code=qr_code, welcome_text=welcome_text
            )
            channel.staff.set(staff)
    except IntegrityError:
        # Lost a race on the same state: remove the config we just made so it is not orphaned in WeCom.
        try:
            get_client().del_contact_way(config_id)
        except WeComError:
            pass
        raise ApplicationError(f"A channel with state {state!r} already exists.", code="duplicate", field="state")
    return channel


def channel_register(channel_id: int) -> Channel:
    """Create the WeCom contact way for a channel saved without one (the admin saves first, then this runs in a
    task: no WeCom call inside the admin's transaction). Idempotent: a channel with a config_id is left alone."""
    channel = Channel.objects.get(pk=channel_id)
    if channel.config_id:
        return channel
    userids = list(channel.staff.values_list("userid", flat=True))
    config_id, qr_code = _add_contact_way(channel.name, channel.state, userids)
    updated = Channel.objects.filter(pk=channel.pk, config_id="").update(config_id=config_id, qr_code=qr_code)
    if not updated:  # registered meanwhile by another run: drop ours
        try:
            get_client().del_contact_way(config_id)
        except WeComError:
            pass
    channel.refresh_from_db()
    return channel


def channel_for_state(state: str | None) -> Channel | None:
    return Channel.objects.filter(state=state).first() if state else None


def channel_daily_stats(channel: Channel, start: date, end: date) -> list[dict]:
    """Per day (Asia/Shanghai) in [start, end]: follow relations added through this channel, deleted, net."""
    tz = timezone.get_current_timezone()
    since = timezone.make_aware(datetime.combine(start, time.min), tz)
    until = timezone.make_aware(datetime.combine(end + timedelta(days=1), time.min), tz)
    follows = FollowRelation.objects.filter(state=channel.state)
    days: dict[date, dict] = {}
    for d in range((end - start).days + 1):
        day = start + timedelta(days=d)
        days[day] = {"day": day.isoformat(), "adds": 0, "deletions": 0, "net": 0}
    for added_at in follows.filter(added_at__gte=since, added_at__lt=until).values_list("added_at", flat=True):
        days[timezone.localtime(added_at, tz).date()]["adds"] += 1
    for f in follows.filter(deleted_by_staff_at__gte=since, deleted_by_staff_at__lt=until).values_list(
        "deleted_by_staff_at", flat=True
    ):
        days[timezone.localtime(f, tz).date()]["deletions"] += 1
    for f in follows.filter(
        deleted_by_staff_at__isnull=True, deleted_by_customer_at__gte=since, deleted_by_customer_at__lt=until
    ).values_list("deleted_by_customer_at", flat=True):
        days[timezone.localtime(f, tz).date()]["deletions"] += 1
    for row in days.values():
        row["net"] = row["adds"] - row["deletions"]
    return list(days.values())
