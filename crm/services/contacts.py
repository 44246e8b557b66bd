"""Contacts: company-owned customers built from WeCom's view (externalcontact/get), with follow relations,
channel attribution, timeline, and phone numbers encrypted at rest and matched by keyed hash."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from crm.errors import ApplicationError
from crm.models.channels import Channel
from crm.models.contacts import Contact, ContactEvent, FollowRelation
from crm.models.staff import Staff
from crm.services.staff import staff_get_or_create
from crm.services.tags import contact_tags_mirror, follow_tags_touched, tags_lock_shared
from crm.services.timeline import from_wecom_ts, timeline_add
from crm.wecom.client import get_client
from crm.wecom.errors import WeComError

logger = logging.getLogger(__name__)

# WeCom answers these when the relation or the customer is gone: nothing to re-read.
GONE_ERRCODES = frozenset({84061, 40096, 40003})
# An add time this much later than ours means the pair was made again (WeCom's createtime is whole seconds).
REMADE_SLACK = timedelta(seconds=1)

# --- phone: encrypted at rest, matched by keyed hash --------------------------------------------


def phone_normalise(raw: str) -> str:
    """Digits only, mainland +86/0086 prefix dropped: '+86 138-0013-8000' -> '13800138000'."""
    digits = re.sub(r"\D", "", raw or "")
    for prefix in ("0086", "86"):
        if digits.startswith(prefix) and len(digits) - len(prefix) == 11:
            digits = digits[len(prefix) :]
    if not 5 <= len(digits) <= 15:
        raise ApplicationError("Not a phone number.", field="phone")
    return digits


def phone_hash(raw: str) -> str:
    """HMAC-SHA256 (settings.PHONE_HASH_KEY) of the normalised number: what we store and match on."""
    return hmac.new(settings.PHONE_HASH_KEY.encode(), phone_normalise(raw).encode(), hashlib.sha256).hexdigest()


def _fernet() -> Fernet:
    return Fernet(settings.FIELD_ENCRYPTION_KEY.encode())


def phone_encrypt(raw: str) -> str:
    return _fernet().encrypt(phone_normalise(raw).encode()).decode()


def phone_decrypt(token: str) -> str:
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        return ""


def contact_set_phone(contact: Contact, raw: str) -> Contact:
    from crm.services.erasure import erased_phone_hashes

    hashed = phone_hash(raw)
    if erased_phone_hashes([hashed]):  # the number of an erased person is not taken on again (tombstone)
        raise ApplicationError("This number belongs to an erased person.", field="phone", code="erased")
    contact.phone_encrypted = phone_encrypt(raw)
    contact.phone_hash = hashed
    contact.save(update_fields=["phone_encrypted", "phone_hash", "updated_at"])
    return contact


BIRTHDAY_EARLIEST = date(1900, 1, 1)


def birthday_parse(value) -> date | None:
    """A birthday from the API or a form: None/"" clears it; a date or "YYYY-MM-DD", not in the future (China's
    today) and not before 1900. A refusal is a 400 naming `birthday`."""
    if value in (None, ""):
        return None
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value.strip())
        except ValueError:
            raise ApplicationError(_("Enter a date (YYYY-MM-DD)."), code="invalid", field="birthday") from None
    if isinstance(value, datetime) or not isinstance(value, date):
        raise ApplicationError(_("Enter a date (YYYY-MM-DD)."), code="invalid", field="birthday")
    today = timezone.localtime(timezone.now(), ZoneInfo("Asia/Shanghai")).date()
    if value > today:
        raise ApplicationError(_("A birthday cannot be in the future."), code="invalid", field="birthday")
    if value < BIRTHDAY_EARLIEST:
        raise ApplicationError(_("A birthday before 1900 is not plausible."), code="invalid", field="birthday")
    return value


def contact_set_birthday(contact: Contact, value, *, source: str = "console") -> Contact:
    """Set (or clear, with None) the contact's birthday, validated; the change is a timeline row."""
    birthday = birthday_parse(value)
    if birthday == contact.birthday:
        return contact
    contact.birthday = birthday
    contact.save(update_fields=["birthday", "updated_at"])
    timeline_add(contact, "profile_updated", data={"field": "birthday", "source": source})
    return contact


# --- upserts from WeCom's view ----------------------------------------------------------------


def contact_upsert(external_contact: dict) -> tuple[Contact, bool]:
    """Create or update the Contact from WeCom's `external_contact` object. Returns (contact, created)."""
    eid = external_contact["external_userid"]
    values = {
        "name": (external_contact.get("name") or "")[:128],
        "type": int(external_contact.get("type") or Contact.Type.WECHAT),
        "gender": int(external_contact.get("gender") or 0),
        "avatar": (external_contact.get("avatar") or "")[:512],
        "corp_name": (external_contact.get("corp_name") or "")[:128],
        "synced_at": timezone.now(),
    }
    if external_contact.get("unionid"):
        values["unionid"] = external_contact["unionid"]
    contact = Contact.objects.select_for_update().filter(external_userid=eid).first()
    if contact is None:
        contact, created = Contact.objects.get_or_create(external_userid=eid, defaults=values)
        if created:
            return contact, True
    for name, value in values.items():
        setattr(contact, name, value)
    contact.save()
    return contact, False


def _tag_ids(follow_info: dict) -> list[str]:
    """Corp tag ids from either shape: get's follow_user.tags[] or batch's follow_info.tag_id[]."""
    if "tag_id" in follow_info:
        return sorted(t for t in follow_info.get("tag_id") or [] if t)
    return sorted(t["tag_id"] for t in follow_info.get("tags") or [] if t.get("tag_id") and t.get("type", 1) == 1)


def follow_upsert(
    contact: Contact, follow_info: dict, *, occurred_at: datetime | None = None, source: str = "callback"
) -> tuple[FollowRelation, bool]:
    """Create or refresh one follow relation from WeCom's follow_user / follow_info. Writes timeline rows for
    what changed: a new (or re-made) relation, a remark/tag edit. Attributes the contact to a channel once.

    Returns (follow, added) where added means the relation is new or came back after a deletion."""
    staff = staff_get_or_create(follow_info["userid"])
    added_at = from_wecom_ts(follow_info.get("createtime")) or occurred_at or timezone.now()
    state = (follow_info.get("state") or "")[:64]
    values = {
        "remark": (follow_info.get("remark") or "")[:64],
        "description": (follow_info.get("description") or "")[:256],
        "state": state,
        "add_way": int(follow_info.get("add_way") or 0),
        "oper_userid": (follow_info.get("oper_userid") or "")[:64],
        "wecom_tag_ids": _tag_ids(follow_info),
    }
    follow = FollowRelation.objects.select_for_update().filter(staff=staff, contact=contact).first()
    added = False
    touched: set[str] = set(values["wecom_tag_ids"])
    if follow is None:
        follow, added = FollowRelation.objects.get_or_create(
            staff=staff, contact=contact, defaults={**values, "added_at": added_at}
        )
    if not added:
        edited = {k: v for k, v in values.items() if getattr(follow, k) != v and k in ("remark", "description")}
        tags_changed = follow.wecom_tag_ids != values["wecom_tag_ids"]
        touched = follow_tags_touched(follow.wecom_tag_ids, values["wecom_tag_ids"],
                                      was_active=follow.deleted_by_staff_at is None)
        if follow.deleted_by_staff_at is not None or _remade(follow, follow_info):
            # WeCom lists the relation again (a re-add, or the takeover of a transfer), or lists it with a newer
            # add time (the customer had deleted the member and added them back): a new relation.
            added = True
            follow.deleted_by_staff_at = None
            follow.added_at = added_at
        follow.deleted_by_customer_at = None if added else follow.deleted_by_customer_at
        for name, value in values.items():
            setattr(follow, name, value)
        follow.save()
        if (edited or tags_changed) and not added:
            timeline_add(
                contact,
                ContactEvent.Kind.EDITED,
                staff=staff,
                data={**edited, **({"tag_ids": values["wecom_tag_ids"]} if tags_changed else {}), "source": source},
                occurred_at=occurred_at,
            )
    if added:
        timeline_add(
            contact,
            ContactEvent.Kind.ADDED,
            staff=staff,
            data={"state": state, "add_way": values["add_way"], "remark": values["remark"], "source": source},
            occurred_at=added_at,
        )
        if contact.first_added_at is None or added_at < contact.first_added_at:
            contact.first_added_at = added_at
            contact.save(update_fields=["first_added_at", "updated_at"])
    contact_tags_mirror(contact, touched, staff=staff)
    _attribute_channel(contact, state, staff, added_at)
    mobiles = [m for m in follow_info.get("remark_mobiles") or [] if m]
    if mobiles and not contact.phone_hash:
        try:
            contact_set_phone(contact, mobiles[0])  # the number staff noted in WeCom, kept encrypted
        except ApplicationError:
            pass
    return follow, added


def _remade(follow: FollowRelation, follow_info: dict) -> bool:
    """WeCom's add time for the pair is later than the one we hold: the relation was made again since."""
    created = from_wecom_ts(follow_info.get("createtime"))
    return bool(created and follow.added_at and created > follow.added_at + REMADE_SLACK)


def _attribute_channel(contact: Contact, state: str, staff: Staff, occurred_at: datetime) -> None:
    """Set the contact's channel once: the first channel (by `state`) that brought it."""
    if contact.channel_id or not state:
        return
    channel = Channel.objects.filter(state=state).first()
    if channel is None:
        return
    updated = Contact.objects.filter(pk=contact.pk, channel__isnull=True).update(channel=channel)
    if updated:
        contact.channel = channel
        timeline_add(
            contact,
            ContactEvent.Kind.CHANNEL,
            staff=staff,
            data={"channel_id": channel.id, "state": state, "name": channel.name},
            occurred_at=occurred_at,
        )


# --- re-reading WeCom ---------------------------------------------------------------------------


def wecom_read_contact(external_userid: str) -> dict | None:
    """externalcontact/get with all follow pages; None if WeCom says the customer is gone for us."""
    try:
        return get_client().externalcontact_get_all(external_userid)
    except WeComError as exc:
        if exc.errcode in GONE_ERRCODES:
            return None
        raise


def person_lock(external_userid: str) -> None:
    """Serialise, until commit, the transactions that write one WeCom customer. Two events for a new customer (an
    add and its half add, two members adding them, a callback beside a sync) otherwise insert the same unique keys
    (the contact, its relation, the welcome) in different orders and deadlock; there is no row to lock before the
    first insert. The tags lock first, shared, as every relation writer takes it (crm.services.tags), then this:
    one order everywhere. PostgreSQL only: SQLite serialises writers anyway."""
    tags_lock_shared()
    if connection.vendor == "postgresql" and connection.in_atomic_block:
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [_PERSON_LOCK_CLASS, external_userid])


_PERSON_LOCK_CLASS = 0x7065_7273  # "pers": the first key of the two-key advisory lock (the tags lock uses one key)


def contact_apply_wecom(
    data: dict, *, occurred_at: datetime | None = None, source: str = "callback"
) -> tuple[Contact, dict[str, tuple[FollowRelation, bool]]]:
    """Apply one externalcontact/get answer: the contact, every follow relation WeCom lists, and mark relations
    WeCom no longer lists as deleted by staff. Returns the contact and {userid: (follow, added)}."""
    with transaction.atomic():
        person_lock(data["external_contact"]["external_userid"])
        contact, _ = contact_upsert(data["external_contact"])
        follows: dict[str, tuple[FollowRelation, bool]] = {}
        for info in data.get("follow_user") or []:
            if info.get("userid"):
                follows[info["userid"].lower()] = follow_upsert(contact, info, occurred_at=occurred_at, source=source)
        for follow in contact.follows.select_related("staff").filter(deleted_by_staff_at__isnull=True):
            if follow.staff.userid.lower() not in follows:
                follow_mark_deleted_by_staff(follow, occurred_at=occurred_at, reason=f"not listed ({source})")
    return contact, follows


def contact_refresh(external_userid: str, *, source: str = "refresh") -> Contact | None:
    """Re-read one customer from WeCom and apply it; None (and relations marked deleted) if WeCom says gone.
    None, without asking WeCom, for an erased person (crm.services.erasure): edit and delete callbacks and
    reconciliation never bring them back."""
    from crm.services.erasure import external_userid_erased

    if external_userid_erased(external_userid):
        return None
    data = wecom_read_contact(external_userid)
    if data is None:
        with transaction.atomic():
            contact = Contact.objects.filter(external_userid=external_userid).first()
            if contact:
                for follow in contact.follows.filter(deleted_by_staff_at__isnull=True):
                    follow_mark_deleted_by_staff(follow, reason=f"gone in WeCom ({source})")
        return None
    contact, _ = contact_apply_wecom(data, source=source)
    return contact


# --- deletions (the relation row and the contact are kept: the company owns the customer) -------


def _lock_contact_first(follow: FollowRelation) -> None:
    """Rows are locked contact first, then its relations (as contact_apply_wecom does): a deletion applied while
    another event re-applies the same contact then waits instead of deadlocking with it."""
    if transaction.get_connection().in_atomic_block:
        tags_lock_shared()
        list(Contact.objects.select_for_update().filter(pk=follow.contact_id).values_list("pk", flat=True))


def follow_mark_deleted_by_staff(
    follow: FollowRelation, *, occurred_at: datetime | None = None, reason: str = ""
) -> bool:
    """The member deleted the customer (or WeCom no longer lists the pair). Returns False if already marked."""
    when = occurred_at or timezone.now()
    _lock_contact_first(follow)
    updated = FollowRelation.objects.filter(pk=follow.pk, deleted_by_staff_at__isnull=True).update(
        deleted_by_staff_at=when, updated_at=timezone.now()
    )
    if updated:
        follow.deleted_by_staff_at = when
        timeline_add(
            follow.contact, ContactEvent.Kind.DELETED_BY_STAFF, staff=follow.staff, data={"reason": reason},
            occurred_at=when,
        )
        # The relation's tags went with it in WeCom: the contact keeps a tag only if another relation carries it.
        contact_tags_mirror(follow.contact, follow.wecom_tag_ids or [], staff=follow.staff)
    return bool(updated)


def follow_mark_deleted_by_customer(follow: FollowRelation, *, occurred_at: datetime | None = None) -> bool:
    """The customer deleted the member: the relation is one-way now (WeCom APIs still work)."""
    when = occurred_at or timezone.now()
    _lock_contact_first(follow)
    updated = FollowRelation.objects.filter(pk=follow.pk, deleted_by_customer_at__isnull=True).update(
        deleted_by_customer_at=when, updated_at=timezone.now()
    )
    if updated:
        follow.deleted_by_customer_at = when
        timeline_add(follow.contact, ContactEvent.Kind.DELETED_BY_CUSTOMER, staff=follow.staff, occurred_at=when)
    return bool(updated)


def follow_active_for(contact: Contact) -> FollowRelation | None:
    """The relation to message this contact through: active staff, not deleted by either side, newest first."""
    return (
        contact.follows.select_related("staff")
        .filter(
            deleted_by_staff_at__isnull=True,
            deleted_by_customer_at__isnull=True,
            staff__status=Staff.Status.ACTIVE,
        )
        .order_by("-added_at", "-id")
        .first()
    )
