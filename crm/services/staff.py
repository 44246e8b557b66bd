"""Staff sync from WeCom: the member directory (user/list_id + user/get) and who has customer contact."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from crm.models.staff import Staff
from crm.wecom.client import get_client
from crm.wecom.errors import WeComError

logger = logging.getLogger(__name__)

# user/get `status`: 1 active, 2 disabled, 4 not activated, 5 left the corp.
_WECOM_LEFT = 5


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
