"""Group lucky packets (群红包) in VIP customer groups.

A group packet IS a red-packet pool (RedPacketPool with `group` set), so its money goes the way every pool's does:
the lucky split precomputed at activation, the atomic Redis claim (one per contact, never over budget), the
claim row, the payout with its bill number and retries, the refund of what is unopened at expiry and the
reconciliation `budget = paid + paying + failed + refunded + reserved + claimable`. What is its own:
- who may open: present external members of the group at open time (redpacket_claim_refusal asks
  `group_packet_refusal`; not cached, a member who left a second ago may not open);
- the message posted in the group with the packet's link (GroupPacketPost, one per packet, at most once);
- the board everyone in the group sees: who opened, how much, the best luck (手气最佳) and what is left.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.core import signing
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy

from crm.audit import audit_action
from crm.errors import ApplicationError, Conflict, NotFound
from crm.models import CustomerGroup, GroupMember, GroupPacketPost, RedPacketClaim, RedPacketPool
from crm.services.customer_links import absolute_url, sign_contact
from crm.services.redpackets import (
    ClaimOutcome,
    redpacket_claim,
    redpacket_pool_activate,
    redpacket_pool_create,
)

logger = logging.getLogger(__name__)

GROUP_PACKET_EXPIRY = timedelta(hours=24)  # WeChat's group packets: what is unopened after a day goes back
MAX_GROUP_PACKETS = 500  # a WeCom customer group holds at most 500 members
_BOARD_SALT = "crm.group-packet-board"

# What an open that got no packet answers: HTTP status and the user-facing message, by reason code.
REFUSALS = {
    "exhausted": (409, gettext_lazy("Too slow! All the red packets have been opened.")),
    "not_member": (403, gettext_lazy("Only members of this group can open this red packet.")),
    "already_claimed": (409, gettext_lazy("You have already opened this red packet.")),
    "not_started": (409, gettext_lazy("This red packet is not open yet.")),
    "expired": (410, gettext_lazy("Sorry, this red packet has expired.")),
}


# --- creation and the post in the group -------------------------------------------------------------------------


@transaction.atomic
def group_packet_create(
    *,
    group_id: int,
    budget_fen: int,
    count: int,
    min_fen: int | None = None,
    max_fen: int | None = None,
    starts_at: datetime | None = None,
    expires_at: datetime | None = None,
    act_name: str = "Group red packet",
    wishing: str = "Best wishes!",
    sender_name: str = "Our brand",
    created_by=None,
) -> RedPacketPool:
    """A draft group packet: budget_fen split (lucky, within WeChat Pay's bounds) among the first `count` members
    who open it; open from starts_at (or launch) to expires_at (24 h after it by default)."""
    group = CustomerGroup.objects.filter(id=group_id).first() if isinstance(group_id, int) else None
    if group is None:
        raise NotFound(gettext("No such customer group."), field="group")
    if group.status != CustomerGroup.Status.ACTIVE:
        raise ApplicationError(gettext("This customer group has been dismissed."), field="group",
                               code="group_dismissed")  # fmt: skip
    if isinstance(count, int) and count > MAX_GROUP_PACKETS:
        raise ApplicationError(f"count must be at most {MAX_GROUP_PACKETS} (a group's size).", field="count")
    if expires_at is None:
        expires_at = (starts_at or timezone.now()) + GROUP_PACKET_EXPIRY
    pool = redpacket_pool_create(
        campaign_id=None, budget_fen=budget_fen, count=count, mode=RedPacketPool.Mode.LUCKY, min_fen=min_fen,
        max_fen=max_fen, expires_at=expires_at, act_name=act_name, wishing=wishing, sender_name=sender_name,
        created_by=created_by, starts_at=starts_at,
    )  # fmt: skip
    pool.group = group
    pool.save(update_fields=["group"])
    return pool


def group_packet_get(pool_id: int) -> RedPacketPool:
    pool = RedPacketPool.objects.select_related("group").filter(id=pool_id, group__isnull=False).first()
    if pool is None:
        raise NotFound(gettext("No such group red packet."), field="pool")
    return pool


def group_packet_launch(pool_id: int) -> RedPacketPool:
    """Activate (the split is made, Redis state built; 409 approval_required over the threshold) and post it in
    the group once, after commit. Idempotent."""
    group_packet_get(pool_id)
    pool = redpacket_pool_activate(pool_id)
    from crm.tasks.group_packets import post_group_packet  # tasks import services; only at runtime

    transaction.on_commit(lambda: post_group_packet.delay(pool.id), robust=True)
    return pool


def group_packet_link(pool_id: int) -> str:
    """The one link posted in the group: the page identifies the visitor through WeChat OAuth."""
    return absolute_url(f"/m/gp/{pool_id}/")


def group_packet_member_url(pool_id: int, contact_id: int) -> str:
    """A member's own signed link (settings.CUSTOMER_LINKS = "signed", and the tests)."""
    return absolute_url(f"/m/gp/t/{sign_contact(contact_id, f'gp:{pool_id}')}/")


def parse_member_token(token: str) -> tuple[int, int]:
    from crm.services.redpackets import parse_object_token

    return parse_object_token(token, "gp")


def group_packet_post_send(pool_id: int) -> str:
    """Post the packet's link in its group (add_msg_template, chat_type group, from the group's owner).

    The GroupPacketPost row (one per pool) is the idempotency key: made SENDING and committed before WeCom is
    called, so a retry or a second launch never posts twice; a crash after the call leaves it SENDING (reported,
    not re-sent: a duplicate packet message in a VIP group is worse than a retry by hand)."""
    pool = group_packet_get(pool_id)
    try:
        with transaction.atomic():
            post = GroupPacketPost.objects.create(pool=pool, sender=_sender(pool))
    except IntegrityError:
        return "already posted"
    return _post_deliver(pool, post)


def _sender(pool: RedPacketPool) -> str:
    group = CustomerGroup.objects.select_related("owner").get(pk=pool.group_id)
    return group.owner.userid if group.owner_id else ""


def group_packet_post_retry(pool_id: int, *, user) -> str:
    """Post a packet whose post failed again, now, from the group's owner today (a handover may have given the group
    one): the row is claimed SENDING again by a conditional update, so two retries never post twice. Audited. 409
    not_failed for a post that did not fail (a SENDING one may have gone out: never re-sent blindly)."""
    pool = group_packet_get(pool_id)
    with transaction.atomic():
        post = GroupPacketPost.objects.select_for_update().filter(pool=pool).first()
        if post is None or post.status != GroupPacketPost.Status.FAILED:
            raise Conflict(gettext("Only a failed post can be sent again."), code="not_failed", field="status")
        if pool.status != RedPacketPool.Status.ACTIVE or pool.expires_at <= timezone.now():
            raise Conflict(gettext("Sorry, this red packet has expired."), code="expired", field="status")
        sender = _sender(pool)
        audit_action(post, actor=user, action="repost_group_packet",
                     changes={"status": (post.status, GroupPacketPost.Status.SENDING), "sender": (post.sender, sender)})
        GroupPacketPost.objects.filter(pk=post.pk).update(status=GroupPacketPost.Status.SENDING, sender=sender,
                                                          errmsg="")  # fmt: skip
        post.sender = sender
    return _post_deliver(pool, post)


def _post_deliver(pool: RedPacketPool, post: GroupPacketPost) -> str:
    """The call itself, for a post row this caller holds (just made, or claimed back from failed)."""
    from crm.wecom.client import get_client
    from crm.wecom.errors import WeComError

    group, sender = pool.group, post.sender
    if not sender:
        GroupPacketPost.objects.filter(pk=post.pk).update(status=GroupPacketPost.Status.FAILED,
                                                          errmsg="the group has no owner to send from")
        return "no sender"
    try:
        result = get_client().add_msg_template(
            chat_type="group", chat_id_list=[group.chat_id], sender=sender, allow_select=False,
            text={"content": pool.wishing},
            attachments=[{"msgtype": "link", "link": {"title": pool.act_name, "desc": pool.wishing,
                                                      "url": group_packet_link(pool.id)}}],
        )  # fmt: skip
    except (WeComError, ApplicationError) as exc:
        GroupPacketPost.objects.filter(pk=post.pk).update(status=GroupPacketPost.Status.FAILED, errmsg=str(exc)[:512])
        return f"failed: {exc}"
    GroupPacketPost.objects.filter(pk=post.pk).update(
        status=GroupPacketPost.Status.SENT, msgid=result.get("msgid") or "", sent_at=timezone.now()
    )
    return f"sent {result.get('msgid')}"


# --- who may open, and opening ------------------------------------------------------------------------------------


def group_packet_is_member(pool: RedPacketPool, contact_id: int) -> bool:
    return GroupMember.objects.filter(
        group_id=pool.group_id, contact_id=contact_id, type=GroupMember.Type.EXTERNAL, left_at__isnull=True
    ).exists()


def group_packet_refusal(pool: RedPacketPool, contact_id: int) -> str | None:
    """not_member for a contact not in the group now (asked by redpacket_claim_refusal for a pool with a group).
    Someone who opened already is answered by the claim (already_claimed), even after leaving."""
    if group_packet_is_member(pool, contact_id):
        return None
    if RedPacketClaim.objects.filter(pool=pool, contact_id=contact_id).exists():
        return None
    return "not_member"


def group_packet_open(*, pool_id: int, contact_id: int) -> ClaimOutcome:
    """Open the group packet: the member's lucky amount, or a 4xx ApplicationError whose code says why not
    (exhausted, not_member, already_claimed, not_started, expired); nothing is reserved or paid then."""
    group_packet_get(pool_id)
    outcome = redpacket_claim(pool_id=pool_id, contact_id=contact_id)
    if outcome.status == "claimed":
        return outcome
    code = {"none_left": "exhausted", "not_eligible": "not_member"}.get(outcome.status, outcome.status)
    status, message = REFUSALS.get(code, (409, gettext_lazy("You cannot open this red packet.")))
    details = {"amount_fen": outcome.amount_fen} if code == "already_claimed" else None
    raise ApplicationError(str(message), code=code, field="pool", status_code=status, details=details)


def group_packet_state(pool: RedPacketPool, contact_id: int) -> tuple[str, int]:
    """What the page shows a visitor before they tap: (status, amount) without claiming."""
    from crm.services.redpackets import redpacket_claim_refusal

    existing = RedPacketClaim.objects.filter(pool=pool, contact_id=contact_id).first()
    if existing:
        return "already_claimed", existing.amount_fen
    if pool.status == RedPacketPool.Status.DRAFT:
        return "not_started", 0
    if pool.status != RedPacketPool.Status.ACTIVE or pool.expires_at <= timezone.now():
        return "expired", 0
    refusal = redpacket_claim_refusal(pool, contact_id)
    if refusal:
        return refusal, 0
    if RedPacketClaim.objects.filter(pool=pool).count() >= pool.count:
        return "exhausted", 0
    return "open", 0


# --- the board the group sees -------------------------------------------------------------------------------------


def board_token(pool_id: int) -> str:
    return signing.dumps({"gp": pool_id}, salt=_BOARD_SALT, compress=True)


def board_url(pool_id: int) -> str:
    return absolute_url(f"/m/gp/board/{board_token(pool_id)}/")


def parse_board_token(token: str) -> int:
    try:
        return int(signing.loads(token, salt=_BOARD_SALT)["gp"])
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        raise ApplicationError(gettext("This link is not valid."), code="bad_link", field="token", status_code=403)


def group_packet_board(pool_id: int) -> dict:
    """Who opened, how much (in the order they opened), the best luck once the packet is finished (all opened,
    or closed), and what is left: what WeChat shows under a group red packet."""
    pool = group_packet_get(pool_id)
    claims = list(RedPacketClaim.objects.filter(pool=pool).select_related("contact").order_by("claimed_at", "id"))
    names = dict(
        GroupMember.objects.filter(group_id=pool.group_id, contact_id__in=[c.contact_id for c in claims])
        .exclude(name="")
        .values_list("contact_id", "name")
    )
    opened_fen = sum(c.amount_fen for c in claims)
    finished = len(claims) >= pool.count or pool.status != RedPacketPool.Status.ACTIVE or (
        pool.expires_at <= timezone.now()
    )
    # The best luck: the largest amount, the earliest opener on a tie (as WeChat does); only once it is settled.
    best = max(claims, key=lambda c: (c.amount_fen, -c.id)) if claims and finished else None
    return {
        "pool_id": pool.id,
        "group": {"id": pool.group_id, "name": str(pool.group)},
        "act_name": pool.act_name,
        "wishing": pool.wishing,
        "status": pool.status,
        "budget_fen": pool.budget_fen,
        "count": pool.count,
        "opened": len(claims),
        "remaining": max(0, pool.count - len(claims)),
        "opened_fen": opened_fen,
        "remaining_fen": pool.budget_fen - opened_fen,
        "finished": finished,
        "expires_at": pool.expires_at,
        "claims": [
            {
                "contact_id": c.contact_id,
                "name": names.get(c.contact_id) or c.contact.name or gettext("Member"),
                "amount_fen": c.amount_fen,
                "claimed_at": c.claimed_at,
                "best_luck": best is not None and c.id == best.id,
                "payout_status": c.status,
            }
            for c in claims
        ],
    }

