"""Data rights for one person: export everything held about them as one JSON document, and erase them.

Erasure anonymises what money and audit need and deletes the rest, in one transaction, then deletes the person's
Redis keys:

- kept, anonymised: the contact row itself (claims, ledger rows and purchases point at it; external_userid
  becomes `erased-<id>`, every personal field is emptied), red-packet claims (pool, amount, billno, status, pay
  API id; the openid goes), campaign recipient rows (the run's counts; the external_userid goes), entries of
  revealed group draws (their published proof sorts by external_userid), handover items, order lines from
  sources (unlinked, phone hash gone), and what loyalty keeps (its part: card, ledger, purchases and lines).
- cancelled: a claim not paid yet (received, failed) becomes `expired`, i.e. refunded to the pool (the payout
  checks the status under the row lock, so nothing is paid after the erase; the pool still balances); a draw
  prize not fulfilled yet fails; messages still pending are excluded at send time (crm.services.pushes reads
  the erase row of the timeline).
- deleted: follow relations (and their welcome messages), tags, consent history, group memberships' names,
  VIP invites, fission invites, game sessions, campaign lucky-draw entries, entries of draws not revealed yet,
  behavioural source events, the timeline (but its data-rights rows), and the Redis keys.

A tombstone (crm.models.ErasureTombstone) keyed by keyed hashes of the external_userid and of the phone number
stops sync, reconciliation, callbacks and imports from bringing the person back; a new add by the same WeChat
user supersedes it (`erasure_supersede_on_add`). Export and erase are each written to the audit log (who, when,
from where, why) and to the contact's timeline.

`crm` never imports `loyalty`: loyalty registers its part (`register_erasure_part`) from its AppConfig.ready(),
as it registers the contact page's panel."""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import redis
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from crm import redisconn
from crm.audit import audit_scrub_contact
from crm.errors import ApplicationError, Conflict, NotFound
from crm.models import (
    ConsentRecord,
    Contact,
    ContactEvent,
    ContactTag,
    ErasureTombstone,
    FissionInvite,
    FollowRelation,
    GameSession,
    GroupDraw,
    GroupDrawEntry,
    GroupDrawWinner,
    GroupMember,
    HandoverItem,
    LuckyDrawEntry,
    RedPacketClaim,
    RedPacketPool,
    SourceEvent,
    SourceOrderLine,
    VipInvite,
    WelcomeMessage,
)
from crm.models.campaigns import CampaignRecipient
from crm.services.timeline import timeline_add

logger = logging.getLogger(__name__)

# Bump when the export document's shape changes in a way a reader must know about.
SCHEMA_VERSION = 1
REASON_MAX = 2000
# Claims whose payout has not been handed to the pay API: an erase cancels (refunds) them.
CANCELLABLE_CLAIMS = (RedPacketClaim.Status.RECEIVED, RedPacketClaim.Status.FAILED)


# --- parts other apps register ------------------------------------------------------------------------------


@dataclass
class ErasureContext:
    """What an erasure part gets: the contact (locked, not yet anonymised), the actor, and a summary to fill."""

    contact: Contact
    actor: str
    reason: str
    now: datetime
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ErasurePart:
    """One app's share of a person's data. `export(contact)` is JSON-ready; `erase(ctx)` runs inside the erase's
    transaction and returns its counts; `redis_keys(contact)` gives (exact keys, SCAN patterns), raw Redis names,
    read before the erase (it may change what they are named after, e.g. a card number)."""

    key: str
    export: Callable[[Contact], Any]
    erase: Callable[[ErasureContext], dict]
    redis_keys: Callable[[Contact], tuple[list[str], list[str]]] | None = None


_parts: dict[str, ErasurePart] = {}


def register_erasure_part(part: ErasurePart) -> None:
    """Add (or replace, by key: ready() may run twice in tests) a part of export and erase."""
    _parts[part.key] = part


def unregister_erasure_part(key: str) -> None:
    _parts.pop(key, None)


# --- tombstones ---------------------------------------------------------------------------------------------


def external_userid_hash(external_userid: str) -> str:
    """The tombstone's key for an external_userid: keyed, so the tombstone does not hold the id itself."""
    message = f"eid:{external_userid}".encode()
    return hmac.new(settings.PHONE_HASH_KEY.encode(), message, hashlib.sha256).hexdigest()


def erased_external_userids(external_userids: Iterable[str]) -> set[str]:
    """Those of these external_userids a live tombstone blocks (one query: sync asks this once per page)."""
    by_hash = {external_userid_hash(eid): eid for eid in set(external_userids) if eid}
    if not by_hash:
        return set()
    live = ErasureTombstone.objects.filter(external_userid_hash__in=list(by_hash), superseded_at__isnull=True)
    return {by_hash[h] for h in live.values_list("external_userid_hash", flat=True)}


def external_userid_erased(external_userid: str) -> bool:
    return bool(erased_external_userids([external_userid]))


def erased_phone_hashes(phone_hashes: Iterable[str]) -> set[str]:
    """Those of these phone hashes a live tombstone blocks (order imports, phones noted in WeCom)."""
    hashes = [h for h in set(phone_hashes) if h]
    if not hashes:
        return set()
    return set(
        ErasureTombstone.objects.filter(phone_hash__in=hashes, superseded_at__isnull=True)
        .values_list("phone_hash", flat=True)
    )


def erasure_blocks_phones() -> bool:
    return ErasureTombstone.objects.filter(superseded_at__isnull=True).exclude(phone_hash="").exists()


def live_tombstone_phone_hashes_sql() -> tuple[str, list]:
    """SQL (and params) selecting the blocked phone hashes, for imports that match in SQL."""
    table = ErasureTombstone._meta.db_table
    return f"SELECT phone_hash FROM {table} WHERE superseded_at IS NULL AND phone_hash <> ''", []  # noqa: S608


def erasure_supersede_on_add(external_userid: str, *, event_time: datetime | None = None) -> bool:
    """A new add by this WeChat user after their erasure is a new, consented relationship: the tombstone stops
    blocking. An add that happened before the erasure (a late or redelivered callback) does not. True when one
    was superseded; the new contact is linked once it exists (`erasure_link_successor`)."""
    # WeCom's CreateTime is whole seconds: an add in the erasure's own second counts as after it.
    when = (event_time or timezone.now()) + timedelta(seconds=1)
    updated = ErasureTombstone.objects.filter(
        external_userid_hash=external_userid_hash(external_userid), superseded_at__isnull=True, erased_at__lt=when
    ).update(superseded_at=timezone.now())
    if updated:
        logger.info("erasure tombstone superseded by a new add")
    return bool(updated)


def erasure_link_successor(external_userid: str, contact: Contact) -> None:
    """Record which contact a superseded tombstone's person came back as (the new relationship)."""
    ErasureTombstone.objects.filter(
        external_userid_hash=external_userid_hash(external_userid), superseded_at__isnull=False,
        superseded_by__isnull=True,
    ).update(superseded_by=contact)


# --- audit --------------------------------------------------------------------------------------------------


def _audit(contact_id: int, *, action: str, user, actor: str, reason: str, extra: dict | None = None) -> None:
    """One audit-log entry (django-auditlog's table, as every staff write): who, when, from where, why."""
    from auditlog.context import auditlog_value
    from auditlog.models import LogEntry
    from django.contrib.contenttypes.models import ContentType

    try:
        remote_addr = auditlog_value.get().get("remote_addr")
    except LookupError:
        remote_addr = None
    LogEntry.objects.create(
        content_type=ContentType.objects.get_for_model(Contact),
        object_pk=str(contact_id),
        object_id=contact_id,
        object_repr=f"contact #{contact_id}" + (" (erased)" if action == "erase" else ""),
        action=LogEntry.Action.ACCESS if action == "export" else LogEntry.Action.DELETE,
        changes={},
        changes_text=action,
        actor=user if getattr(user, "is_authenticated", False) else None,
        remote_addr=remote_addr,
        additional_data={"data_rights": action, "actor": actor, "reason": reason, **(extra or {})},
    )


def _clean_reason(reason, *, required: bool) -> str:
    if reason is None:
        reason = ""
    if not isinstance(reason, str):
        raise ApplicationError("reason must be text.", field="reason")
    reason = reason.strip()
    if required and not reason:
        raise ApplicationError("Give the reason for the erasure (e.g. the customer's request and its reference).",
                               field="reason", code="required")
    if len(reason) > REASON_MAX:
        raise ApplicationError(f"reason must be at most {REASON_MAX} characters.", field="reason")
    return reason


def _actor_name(actor: str, user) -> str:
    name = actor or (user.get_username() if getattr(user, "is_authenticated", False) else "")
    if not name:
        raise ApplicationError("Say who is doing this.", field="actor")
    return name[:150]


# --- export -------------------------------------------------------------------------------------------------


def _iso(value):
    return value.isoformat() if hasattr(value, "isoformat") else value


def _rows(qs, *fields) -> list[dict]:
    return [{k: _iso(v) for k, v in row.items()} for row in qs.values(*fields)]


def _crm_export(contact: Contact) -> dict:
    from crm.services.contacts import phone_decrypt

    return {
        "contact": {
            "id": contact.id, "external_userid": contact.external_userid, "unionid": contact.unionid,
            "name": contact.name, "type": contact.type, "gender": contact.gender, "avatar": contact.avatar,
            "corp_name": contact.corp_name, "phone": phone_decrypt(contact.phone_encrypted),
            "birthday": _iso(contact.birthday),
            "channel": contact.channel.state if contact.channel else None,
            "first_added_at": _iso(contact.first_added_at), "synced_at": _iso(contact.synced_at),
            "created_at": _iso(contact.created_at), "erased_at": _iso(contact.erased_at),
        },
        "follows": _rows(contact.follows.order_by("id"), "staff__userid", "remark", "description", "state",
                         "add_way", "oper_userid", "wecom_tag_ids", "added_at", "deleted_by_staff_at",
                         "deleted_by_customer_at"),
        "welcome_messages": _rows(WelcomeMessage.objects.filter(follow__contact=contact).order_by("id"),
                                  "follow__staff__userid", "status", "text", "link_url", "sent_at"),
        "tags": [{"group": ct.tag.group.name, "tag": ct.tag.name, "added_at": _iso(ct.created_at)}
                 for ct in contact.contact_tags.select_related("tag__group").order_by("id")],
        "consents": _rows(contact.consents.order_by("purpose", "version"), "purpose", "version", "granted",
                          "source", "policy_version", "recorded_at"),
        "groups": _rows(contact.group_memberships.order_by("id"), "group__chat_id", "group__name", "name",
                        "join_scene", "joined_at", "left_at"),
        "vip_invites": _rows(VipInvite.objects.filter(contact=contact).order_by("id"), "state", "created_at"),
        "campaign_recipients": _rows(
            CampaignRecipient.objects.filter(contact=contact).order_by("id"), "campaign_id", "campaign__name",
            "run_id", "sender__userid", "status", "reason", "quota_day", "sent_at"),
        "red_packet_claims": _rows(
            RedPacketClaim.objects.filter(contact=contact).order_by("id"), "pool_id", "pool__act_name",
            "amount_fen", "billno", "status", "claimed_at", "paid_at"),
        "group_draw_entries": _rows(GroupDrawEntry.objects.filter(contact=contact).order_by("id"), "draw_id",
                                    "draw__name", "external_userid", "created_at"),
        "group_draw_wins": _rows(GroupDrawWinner.objects.filter(entry__contact=contact).order_by("id"), "draw_id",
                                 "rank", "prize__kind", "status", "fulfilled_at"),
        "lucky_draw_entries": _rows(LuckyDrawEntry.objects.filter(contact=contact).order_by("id"),
                                    "draw__campaign_id", "prize", "created_at"),
        "fission_invites": _rows(FissionInvite.objects.filter(inviter=contact).order_by("id"), "pool_id", "state",
                                 "created_at"),
        "fission_referrals": _rows(contact.fission_referrals.order_by("id"), "pool_id", "created_at"),
        "game_sessions": _rows(GameSession.objects.filter(contact=contact).order_by("id"), "pool_id", "started_at",
                               "finished_at", "score"),
        "handovers": _rows(HandoverItem.objects.filter(contact=contact).order_by("id"), "handover_id", "status"),
        "timeline": _rows(contact.events.order_by("occurred_at", "id"), "kind", "staff__userid", "data",
                          "occurred_at"),
        "source_events": _rows(contact.source_events.order_by("id"), "source__code", "kind", "properties",
                               "occurred_at"),
        "source_orders": _rows(contact.source_order_lines.order_by("id"), "source__code", "order_id", "line_no",
                               "sku", "quantity", "amount_fen", "ordered_at"),
    }


def _crm_redis_keys(contact: Contact) -> tuple[list[str], list[str]]:
    from crm.services.redpackets import KEY_PREFIX

    keys = [f"{KEY_PREFIX}{pool_id}:eligible:{contact.pk}" for pool_id in RedPacketPool.objects.exclude(
        status=RedPacketPool.Status.DRAFT).values_list("id", flat=True)]
    # The claim throttle per visitor (crm.api.throttles.ClaimVisitorThrottle, DRF's cache_format).
    keys.append(cache.make_key(f"throttle_redpacket_claim_visitor_{contact.pk}:window"))
    # Anything keyed "...contact:<id>" under the project's prefix (kept from the first erase's convention).
    patterns = [f"crm:*contact:{contact.pk}", f"crm:*contact:{contact.pk}:*"]
    return keys, patterns


def _redis_keys(contact: Contact) -> tuple[list[str], list[str]]:
    keys, patterns = _crm_redis_keys(contact)
    for part in _parts.values():
        if part.redis_keys is not None:
            more_keys, more_patterns = part.redis_keys(contact)
            keys += more_keys
            patterns += more_patterns
    return keys, patterns


def _redis() -> redis.Redis:
    return redisconn.client(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5)


def _existing_keys(client: redis.Redis, keys: list[str], patterns: list[str]) -> list[str]:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.exists(key)
    found = {k for k, n in zip(keys, pipe.execute(), strict=True) if n}
    for pattern in patterns:
        found.update(k.decode() if isinstance(k, bytes) else k for k in client.scan_iter(match=pattern, count=1000))
    return sorted(found)


def _redis_export(contact: Contact) -> list[dict]:
    client = _redis()
    out = []
    for key in _existing_keys(client, *_redis_keys(contact)):
        kind = client.type(key)
        out.append({"key": key, "type": kind.decode() if isinstance(kind, bytes) else kind, "ttl": client.ttl(key)})
    return out


def contact_export(contact_id: int, *, actor: str = "", user=None, reason: str = "") -> dict:
    """Everything held about one person, as one JSON-ready document with a schema_version (audited)."""
    contact = Contact.objects.select_related("channel").filter(pk=contact_id).first()
    if contact is None:
        raise NotFound(f"Contact {contact_id} does not exist.", field="contact_id")
    actor = _actor_name(actor, user)
    reason = _clean_reason(reason, required=False)
    document = {
        "schema_version": SCHEMA_VERSION,
        "exported_at": timezone.now().isoformat(),
        "exported_by": actor,
        **_crm_export(contact),
    }
    for key, part in sorted(_parts.items()):
        document[key] = part.export(contact)
    try:
        document["redis_keys"] = _redis_export(contact)
    except redis.RedisError:
        raise ApplicationError("Redis is not available right now: try the export again in a moment.",
                               code="unavailable", status_code=503) from None
    with transaction.atomic():
        timeline_add(contact, ContactEvent.Kind.DATA_RIGHTS, data={"action": "export", "actor": actor})
        _audit(contact.pk, action="export", user=user, actor=actor, reason=reason)
    return document


# --- erase --------------------------------------------------------------------------------------------------


def _crm_erase(ctx: ErasureContext) -> None:
    contact, s = ctx.contact, ctx.summary
    anon = f"erased-{contact.pk}"
    # Money: a claim not yet handed to the pay API is refunded (expired), under the row lock the payout takes.
    s["claims_cancelled"] = RedPacketClaim.objects.filter(contact=contact, status__in=CANCELLABLE_CLAIMS).update(
        status=RedPacketClaim.Status.EXPIRED, last_error="contact erased before payout: refunded"
    )
    s["claims_kept"] = RedPacketClaim.objects.filter(contact=contact).update(openid="")
    # Campaign rows stay for the runs' counts; pending ones are excluded at send time (reason "erased").
    s["campaign_recipients_anonymised"] = CampaignRecipient.objects.filter(contact=contact).update(
        external_userid=anon)
    # Group draws: out of those not drawn yet; a revealed draw keeps its entry (its published proof sorts by the
    # external_userid) but an unfulfilled prize is not given to an erased person.
    open_entries = GroupDrawEntry.objects.filter(contact=contact).exclude(draw__status=GroupDraw.Status.REVEALED)
    s["draw_entries_deleted"] = open_entries.delete()[0]
    s["draw_prizes_cancelled"] = GroupDrawWinner.objects.filter(
        entry__contact=contact, status=GroupDrawWinner.Status.PENDING
    ).update(status=GroupDrawWinner.Status.FAILED, reason="contact_erased")
    s["lucky_draw_entries_deleted"] = LuckyDrawEntry.objects.filter(contact=contact).delete()[0]
    s["handover_items_anonymised"] = HandoverItem.objects.filter(contact=contact).update(external_userid=anon)
    # Relationship data: gone. With no follow and no consent the contact is in no segment or campaign any more.
    s["follows_deleted"] = FollowRelation.objects.filter(contact=contact).delete()[0]
    s["tags_deleted"] = ContactTag.objects.filter(contact=contact).delete()[0]
    s["consents_deleted"] = ConsentRecord.objects.filter(contact=contact).delete()[0]
    s["vip_invites_deleted"] = VipInvite.objects.filter(contact=contact).delete()[0]
    s["fission_invites_deleted"] = FissionInvite.objects.filter(inviter=contact).delete()[0]
    s["game_sessions_deleted"] = GameSession.objects.filter(contact=contact).delete()[0]
    s["group_memberships_anonymised"] = GroupMember.objects.filter(contact=contact).update(name="")
    s["source_events_deleted"] = SourceEvent.objects.filter(contact=contact).delete()[0]
    s["source_orders_unlinked"] = SourceOrderLine.objects.filter(contact=contact).update(contact=None, phone_hash="")
    s["timeline_deleted"] = contact.events.exclude(kind=ContactEvent.Kind.DATA_RIGHTS).delete()[0]


def contact_erase(contact_id: int, *, reason: str, actor: str = "", user=None) -> dict:
    """Erase one person (see the module's docstring for what is kept, cancelled and deleted); audited, with the
    reason required. A contact already erased is a 409."""
    reason = _clean_reason(reason, required=True)
    actor = _actor_name(actor, user)
    contact = Contact.objects.filter(pk=contact_id).first()
    if contact is None:
        raise NotFound(f"Contact {contact_id} does not exist.", field="contact_id")
    if contact.erased_at is not None:
        raise Conflict("This contact has already been erased.", field="contact_id", code="already_erased")
    keys, patterns = _redis_keys(contact)  # before: a part may rename what they are keyed by
    now = timezone.now()
    with transaction.atomic():
        contact = Contact.objects.select_for_update().get(pk=contact_id)
        if contact.erased_at is not None:
            raise Conflict("This contact has already been erased.", field="contact_id", code="already_erased")
        ctx = ErasureContext(contact=contact, actor=actor, reason=reason, now=now)
        _crm_erase(ctx)
        for key, part in sorted(_parts.items()):
            ctx.summary[key] = part.erase(ctx)
        eid_hash, phone = external_userid_hash(contact.external_userid), contact.phone_hash
        if phone and ErasureTombstone.objects.filter(phone_hash=phone, superseded_at__isnull=True).exists():
            phone = ""  # another erased contact had this number: its tombstone blocks it already
        Contact.objects.filter(pk=contact.pk).update(
            external_userid=f"erased-{contact.pk}", name="", unionid="", avatar="", corp_name="",
            phone_encrypted="", phone_hash="", birthday=None, gender=Contact.Gender.UNKNOWN, erased_at=now,
            updated_at=now,
        )
        # The row pushes.py checks before each send, and the receipt on the (otherwise empty) timeline.
        timeline_add(contact, ContactEvent.Kind.DATA_RIGHTS, data={"action": "erase", "actor": actor})
        ErasureTombstone.objects.create(
            contact=contact, external_userid_hash=eid_hash, phone_hash=phone, reason=reason,
            erased_by=user if getattr(user, "is_authenticated", False) else None, erased_by_name=actor,
            erased_at=now, summary=ctx.summary,
        )
        audit_scrub_contact(contact.pk)
        _audit(contact.pk, action="erase", user=user, actor=actor, reason=reason)
    try:
        client = _redis()
        found = _existing_keys(client, keys, patterns)
        if found:
            client.delete(*found)
        ctx.summary["redis_keys_deleted"] = len(found)
    except redis.RedisError:
        # The erase is committed; what is left in Redis are caches and throttle windows that expire on their own.
        logger.warning("erasure: Redis keys not deleted", extra={"contact_id": contact_id})
        ctx.summary["redis_keys_deleted"] = None
    ErasureTombstone.objects.filter(contact_id=contact_id, erased_at=now).update(summary=ctx.summary)
    logger.info("contact erased", extra={"contact_id": contact_id, "actor": actor})
    return {"contact_id": contact_id, "erased_at": now.isoformat(), "summary": ctx.summary}


def contact_is_erased(contact_id: int) -> bool:
    return Contact.objects.filter(pk=contact_id, erased_at__isnull=False).exists()
