"""Fission (任务宝): "invite N friends to unlock your red packet".

Each customer of a gated pool gets a personal invite QR, a WeCom contact way of one of their own staff whose
`state` is `fx<pool>-<customer>` (WeCom echoes the state in the add callback). A friend counts for the inviter when
their add callback carries that state and the friend is new to the brand: the CRM first knew them after the invite
was made. A friend counts once per pool (FissionReferral's UNIQUE (pool, invitee)), whoever
invited them first, and never for a customer who scanned their own QR.
"""

from __future__ import annotations

import logging
import re

from django.db import IntegrityError, transaction

from crm.errors import ApplicationError, NotFound
from crm.models import Contact, FissionInvite, FissionReferral, FollowRelation, RedPacketPool
from crm.services.segments import active_follow_q
from crm.wecom.client import get_client
from crm.wecom.errors import WeComError

logger = logging.getLogger(__name__)
STATE_RE = re.compile(r"^fx(\d+)-(\d+)$")


def fission_state(pool_id: int, contact_id: int) -> str:
    return f"fx{pool_id}-{contact_id}"


def fission_progress(pool: RedPacketPool, contact_id: int) -> dict:
    """{"needed": N, "friends": n, "unlocked": bool} for a gated pool; needed 0 when the pool has no gate."""
    needed = pool.gate_friends
    friends = FissionReferral.objects.filter(pool=pool, invite__inviter_id=contact_id).count() if needed else 0
    return {"needed": needed, "friends": min(friends, needed), "unlocked": friends >= needed}


def fission_invite(pool_id: int, contact_id: int) -> FissionInvite:
    """The customer's invite QR for this pool, made once (a contact way of a staff member who follows them)."""
    existing = FissionInvite.objects.filter(pool_id=pool_id, inviter_id=contact_id).first()
    if existing:
        return existing
    pool = RedPacketPool.objects.filter(id=pool_id).first()
    if pool is None or not pool.gate_friends:
        raise NotFound("This red packet has no invite task.", field="pool")
    follow = (
        FollowRelation.objects.select_related("staff")
        .filter(active_follow_q(prefix=""), contact_id=contact_id)
        .order_by("added_at", "id")
        .first()
    )
    staff = follow.staff if follow else None
    if staff is None:
        raise ApplicationError("No staff member can invite on this customer's behalf.", code="no_staff",
                               field="contact", status_code=409)  # fmt: skip
    state = fission_state(pool_id, contact_id)
    try:
        way = get_client().add_contact_way(type=1, scene=2, state=state, user=[staff.userid], skip_verify=True,
                                           remark=f"fission {pool_id}"[:30])  # fmt: skip
    except WeComError as exc:
        raise ApplicationError(f"WeCom refused the invite QR: {exc.errmsg}", code=f"wecom_{exc.errcode}") from exc
    try:
        with transaction.atomic():
            return FissionInvite.objects.create(pool_id=pool_id, inviter_id=contact_id, state=state,
                                                config_id=way.get("config_id", ""), qr_code=way.get("qr_code", ""))
    except IntegrityError:  # made by a concurrent request: theirs stands (ours is an unused contact way)
        return FissionInvite.objects.get(pool_id=pool_id, inviter_id=contact_id)


def fission_record_add(*, state: str, contact: Contact) -> str | None:
    """From an add callback: count the friend for the invite its state names, when it counts. What happened."""
    if not STATE_RE.match(state or ""):
        return None
    invite = FissionInvite.objects.select_related("pool").filter(state=state).first()
    if invite is None:
        return "fission: unknown invite"
    if invite.inviter_id == contact.pk:
        return "fission: own invite, not counted"
    # New to the brand: the CRM first knew them after the invite was made (any earlier add, sync or import made
    # their row). A friend of the brand re-adding through a QR is not a new friend.
    if contact.created_at < invite.created_at:
        return "fission: not new to the brand, not counted"
    try:
        with transaction.atomic():
            FissionReferral.objects.create(invite=invite, pool=invite.pool, invitee=contact)
    except IntegrityError:
        return "fission: already counted for this pool"
    logger.info("fission referral", extra={"pool_id": invite.pool_id, "inviter": invite.inviter_id,
                                           "invitee": contact.pk})  # fmt: skip
    return f"fission: friend counted for contact {invite.inviter_id}"
