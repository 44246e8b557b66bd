"""Staff sync from WeCom: the member directory (user/list_id + user/get) and who has customer contact."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from crm.errors import ApplicationError, NotFound
from crm.models.staff import Staff
from crm.wecom.client import get_client
from crm.wecom.errors import WeComError

logger = logging.getLogger(__name__)

# user/get `status`: 1 active, 2 disabled, 4 not activated, 5 left the corp.
_WECOM_LEFT = 5
# user/get errcodes for a userid the directory does not hold (never did, or removed on leaving).
_NOT_A_MEMBER = frozenset({40003, 60111, 60123, 46004})


def staff_get_or_create(userid: str) -> Staff:
    """The Staff row for a WeCom userid seen in an event, created bare (staff_sync fills it in) if unknown."""
    staff = Staff.objects.filter(userid__iexact=userid).first()
    if staff is None:
        staff, _ = Staff.objects.get_or_create(userid=userid)
    return staff


def staff_sync() -> dict:
    """Mirror the WeCom directory into Staff. Members gone from the directory are marked resigned, never deleted.

    WeCom reads happen first, outside any transaction; the writes are one short transaction."""
    client = get_client()
    userids = [row["userid"] for row in client.iter_user_list_id() if row.get("userid")]
    follow_users = {u.lower() for u in client.get_follow_user_list().get("follow_user") or []}
    details: dict[str, dict] = {}
    for userid in userids:
        try:
            details[userid] = client.user_get(userid)
        except WeComError as exc:
            if exc.retryable:
                raise
            # 40003/60111: removed between list and get, i.e. resigned just now.
            logger.info("member vanished during staff sync", extra={"userid": userid, "errcode": exc.errcode})

    now = timezone.now()
    counts = {"created": 0, "updated": 0, "resigned": 0}
    with transaction.atomic():
        existing = {s.userid.lower(): s for s in Staff.objects.select_for_update()}
        for userid, info in details.items():
            left = int(info.get("status") or 1) == _WECOM_LEFT
            values = {
                "name": info.get("name") or "",
                "has_customer_contact": userid.lower() in follow_users,
                "status": Staff.Status.RESIGNED if left else Staff.Status.ACTIVE,
                "synced_at": now,
            }
            staff = existing.pop(userid.lower(), None)
            if staff is None:
                Staff.objects.create(userid=userid, resigned_at=now if left else None, **values)
                counts["created"] += 1
                continue
            if left and staff.status != Staff.Status.RESIGNED:
                values["resigned_at"] = now
                counts["resigned"] += 1
            elif not left:
                values["resigned_at"] = None
            for name, value in values.items():
                setattr(staff, name, value)
            staff.save()
            counts["updated"] += 1
        # Whoever is no longer in the directory has left the corp (WeCom removes resigned members).
        for staff in existing.values():
            if staff.status != Staff.Status.RESIGNED:
                staff.status = Staff.Status.RESIGNED
                staff.resigned_at = now
                staff.has_customer_contact = False
                staff.save(update_fields=["status", "resigned_at", "has_customer_contact", "updated_at"])
                counts["resigned"] += 1
    logger.info("staff sync done", extra={"counts": counts})
    return counts


def _member_from_wecom(userid: str) -> tuple[dict | None, bool]:
    """(user/get's answer, or None when WeCom has no such member; whether they have customer contact)."""
    client = get_client()
    try:
        info = client.user_get(userid)
    except WeComError as exc:
        if exc.errcode in _NOT_A_MEMBER:
            return None, False
        raise
    follow_users = {u.lower() for u in client.get_follow_user_list().get("follow_user") or []}
    return info, userid.lower() in follow_users


def staff_add(userid: str) -> Staff:
    """Add one member of the WeCom directory as staff now, without waiting for the next sync (e.g. a new hire to put
    on a channel). Everything but the userid comes from WeCom; a userid WeCom does not know is refused.

    The WeCom reads happen before, and outside, the one short transaction that writes."""
    userid = (userid or "").strip()
    if not userid or len(userid) > 64:
        raise ApplicationError(_("Give the member's WeCom userid (at most 64 characters)."), field="userid")
    if Staff.objects.filter(userid__iexact=userid).exists():
        raise ApplicationError(_("%(userid)s is already staff.") % {"userid": userid}, code="duplicate",
                               field="userid")
    info, has_contact = _member_from_wecom(userid)
    if info is None or int(info.get("status") or 1) == _WECOM_LEFT:
        raise ApplicationError(_("WeCom has no member %(userid)s on the job.") % {"userid": userid},
                               code="unknown_member", field="userid")
    with transaction.atomic():
        if Staff.objects.filter(userid__iexact=userid).exists():  # added meanwhile (a sync, another click)
            raise ApplicationError(_("%(userid)s is already staff.") % {"userid": userid}, code="duplicate",
                                   field="userid")
        return Staff.objects.create(userid=info.get("userid") or userid, name=info.get("name") or "",
                                    has_customer_contact=has_contact, status=Staff.Status.ACTIVE,
                                    synced_at=timezone.now())


def staff_refresh(staff_id: int) -> Staff:
    """Re-read one staff member from WeCom (name, customer contact, on the job or gone), as a sync would.
    A member gone from the directory is marked resigned, never deleted: their customers are handed over."""
    staff = Staff.objects.filter(pk=staff_id).first()
    if staff is None:
        raise NotFound(_("No such staff member."), field="staff")
    info, has_contact = _member_from_wecom(staff.userid)
    now = timezone.now()
    left = info is None or int(info.get("status") or 1) == _WECOM_LEFT
    with transaction.atomic():
        staff = Staff.objects.select_for_update().get(pk=staff_id)
        if info is not None:
            staff.name = info.get("name") or staff.name
        staff.has_customer_contact = has_contact and not left
        if left and staff.status != Staff.Status.RESIGNED:
            staff.status, staff.resigned_at = Staff.Status.RESIGNED, now
        elif not left:
            staff.status, staff.resigned_at = Staff.Status.ACTIVE, None
        staff.synced_at = now
        staff.save()
    return staff
