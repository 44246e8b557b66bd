"""Corp customer tags: synced both ways with WeCom's corp tags, and the company view of who carries them.

The company view (ContactTag) of a WeCom tag follows WeCom: a contact carries it while one of its relations (not
deleted by staff) carries it there (FollowRelation.wecom_tag_ids, what WeCom last said). Only the tags a relation
gained or lost are mirrored (`contact_tags_mirror`), so a tag given in the CRM and not yet pushed is never taken
back by a re-read that raced the push. A rename or delete made in the CRM goes to WeCom first
(edit_corp_tag / del_corp_tag); one made in WeCom's console comes back by change_external_tag or the reconcile."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from crm.errors import ApplicationError
from crm.models.contacts import Contact, ContactEvent, FollowRelation
from crm.models.staff import Staff
from crm.models.tags import ContactTag, Tag, TagGroup
from crm.services.timeline import timeline_add
from crm.wecom.client import get_client
from crm.wecom.errors import WeComError

TAG_EXISTS = 40071
TAG_INVALID = 40068  # unknown id, or (as WeCom answers it) a tag this app did not create
RELATION_GONE = frozenset({84061, 40096})
NAME_MAX = 30  # WeCom's limit for tag and group names


def tag_ensure(group_name: str, tag_name: str) -> Tag:
    """The crm tag `group_name/tag_name`, created if missing (it gets a WeCom id when pushed or synced)."""
    group = TagGroup.objects.filter(name=group_name, deleted_at__isnull=True).order_by("id").first()
    if group is None:
        group = TagGroup.objects.create(name=group_name)
    tag, _ = Tag.objects.get_or_create(group=group, name=tag_name)
    if tag.deleted_at is not None:
        tag.deleted_at = None
        tag.save(update_fields=["deleted_at"])
    return tag


def _queue_push(contact_id: int) -> None:
    from crm.tasks.contacts import push_contact_tags

    transaction.on_commit(lambda: push_contact_tags.delay(contact_id))


def contact_tag_add(contact: Contact, tag: Tag, *, staff: Staff | None = None, source: str = "crm") -> bool:
    """Put a tag on a contact (company view) and, after commit, on its WeCom relations. False if already there."""
    _, created = ContactTag.objects.get_or_create(contact=contact, tag=tag, defaults={"staff": staff})
    if created:
        timeline_add(contact, ContactEvent.Kind.TAGGED, staff=staff, data={"tag": str(tag), "source": source})
        if source != "wecom":  # what came from WeCom is already there
            _queue_push(contact.pk)
    return created


def contact_tag_remove(contact: Contact, tag: Tag, *, staff: Staff | None = None, source: str = "crm") -> bool:
    deleted, _ = ContactTag.objects.filter(contact=contact, tag=tag).delete()
    if deleted:
        timeline_add(contact, ContactEvent.Kind.UNTAGGED, staff=staff, data={"tag": str(tag), "source": source})
        if source != "wecom":
            _queue_push(contact.pk)
    return bool(deleted)


def tag_push(tag: Tag) -> Tag:
    """Create a crm tag as a WeCom corp tag (once), so staff see it and it can be marked on customers there."""
    if tag.wecom_id:
        return tag
    group = tag.group
    try:
        created = get_client().add_corp_tag(
            [{"name": tag.name}], group_id=group.wecom_id or None, group_name=None if group.wecom_id else group.name
        )["tag_group"]
    except WeComError as exc:
        if exc.errcode != TAG_EXISTS:
            raise
        tags_sync_from_wecom()  # made by someone else already: adopt its id
        tag.refresh_from_db()
        return tag
    with transaction.atomic():
        if not group.wecom_id:
            TagGroup.objects.filter(pk=group.pk).update(wecom_id=created["group_id"])
        wecom_id = next((t["id"] for t in created.get("tag") or [] if t["name"] == tag.name), None)
        Tag.objects.filter(pk=tag.pk).update(wecom_id=wecom_id)
    tag.refresh_from_db()
    return tag


def contact_tags_push(contact_id: int) -> dict:
    """Make the corp tags on each of the contact's active WeCom relations match the company view (ContactTag):
    add what the company gave, remove known tags it took away. WeCom calls first, each relation saved after."""
    from crm.models.contacts import FollowRelation

    contact = Contact.objects.filter(pk=contact_id).first()
    if contact is None:
        return {"contact": "gone"}
    wanted = [tag_push(t) for t in Tag.objects.select_related("group").filter(contact_tags__contact=contact,
                                                                               deleted_at__isnull=True)]
    wanted_ids = {t.wecom_id for t in wanted if t.wecom_id}
    known_ids = set(Tag.objects.filter(wecom_id__isnull=False).values_list("wecom_id", flat=True))
    counts = {"added": 0, "removed": 0}
    follows = FollowRelation.objects.select_related("staff").filter(
        contact=contact, deleted_by_staff_at__isnull=True, staff__status=Staff.Status.ACTIVE
    )
    for follow in follows:
        have = set(follow.wecom_tag_ids)
        add, remove = wanted_ids - have, (have & known_ids) - wanted_ids
        if not add and not remove:
            continue
        try:
            get_client().mark_tag(follow.staff.userid, contact.external_userid, add_tag=sorted(add) or None,
                                  remove_tag=sorted(remove) or None)
        except WeComError as exc:
            if exc.errcode in RELATION_GONE:
                continue
            raise
        FollowRelation.objects.filter(pk=follow.pk).update(wecom_tag_ids=sorted((have | add) - remove))
        counts["added"] += len(add)
        counts["removed"] += len(remove)
    return counts


def contacts_bulk_tag(*, contact_ids: list[int], tag_ids: list[int], remove: bool = False) -> int:
    """Tag (or untag) many contacts at once: all or nothing; unknown ids are refused naming the field."""
    if not contact_ids:
        raise ApplicationError("Give at least one contact.", field="contact_ids")
    if not tag_ids:
        raise ApplicationError("Give at least one tag.", field="tag_ids")
    contacts = list(Contact.objects.filter(pk__in=set(contact_ids)))
    tags = list(Tag.objects.filter(pk__in=set(tag_ids), deleted_at__isnull=True).select_related("group"))
    missing_contacts = sorted(set(contact_ids) - {c.pk for c in contacts})
    if missing_contacts:
        raise ApplicationError(f"Unknown contacts: {missing_contacts}", field="contact_ids")
    missing_tags = sorted(set(tag_ids) - {t.pk for t in tags})
    if missing_tags:
        raise ApplicationError(f"Unknown tags: {missing_tags}", field="tag_ids")
    changed = 0
    with transaction.atomic():
        for contact in contacts:
            for tag in tags:
                op = contact_tag_remove if remove else contact_tag_add
                changed += op(contact, tag, source="bulk")
    return changed


# --- the company view follows WeCom ------------------------------------------------------------

# A relation may carry a tag id the CRM does not know yet (the member's edit was read before the tag's own
# change_external_tag), while a tag sync creates that tag and puts it on the relations already carrying it. Run
# concurrently, each would miss the other's uncommitted half. So a transaction that writes relations' tag ids takes
# this lock shared at its start (they never wait on each other) and the tag sync takes it exclusively: one then
# sees what the other committed. First thing in the transaction, before any row lock, so it cannot deadlock.
# PostgreSQL only: SQLite serialises writers anyway.
_TAGS_LOCK_KEY = 0x7461_6773  # "tags"


def tags_lock_shared() -> None:
    if connection.vendor == "postgresql" and connection.in_atomic_block:
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock_shared(%s)", [_TAGS_LOCK_KEY])


def _tags_lock_exclusive() -> None:
    if connection.vendor == "postgresql" and connection.in_atomic_block:
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", [_TAGS_LOCK_KEY])



def contact_tags_mirror(contact: Contact, wecom_ids: Iterable[str], *, staff: Staff | None = None) -> dict:
    """For these corp tag ids (the ones a relation of the contact just gained or lost in WeCom), make the company
    view say what WeCom says: carried while an active relation carries it. Returns {"tagged": n, "untagged": n}."""
    ids = {t for t in wecom_ids if t}
    counts = {"tagged": 0, "untagged": 0}
    if not ids:
        return counts
    carried: set[str] = set()
    for tag_ids in FollowRelation.objects.filter(contact=contact, deleted_by_staff_at__isnull=True).values_list(
        "wecom_tag_ids", flat=True
    ):
        carried.update(tag_ids or [])
    tags = list(Tag.objects.select_related("group").filter(wecom_id__in=ids, deleted_at__isnull=True))
    have = set(ContactTag.objects.filter(contact=contact, tag__in=tags).values_list("tag_id", flat=True))
    for tag in tags:
        if tag.wecom_id in carried and tag.pk not in have:
            _, created = ContactTag.objects.get_or_create(contact=contact, tag=tag, defaults={"staff": staff})
            if created:
                counts["tagged"] += 1
                timeline_add(contact, ContactEvent.Kind.TAGGED, staff=staff, data={"tag": str(tag), "source": "wecom"})
        elif (tag.wecom_id not in carried and tag.pk in have
              and ContactTag.objects.filter(contact=contact, tag=tag).delete()[0]):
            counts["untagged"] += 1
            timeline_add(contact, ContactEvent.Kind.UNTAGGED, staff=staff, data={"tag": str(tag), "source": "wecom"})
    return counts


def follow_tags_touched(before: Iterable[str], after: Iterable[str], *, was_active: bool = True) -> set[str]:
    """The tag ids to mirror when a relation goes from `before` to `after`: what changed, or everything when the
    relation comes back (its old list no longer counted while it was deleted)."""
    old, new = set(before or []), set(after or [])
    return old | new if not was_active else old ^ new


def _follows_carrying(wecom_ids: set[str]):
    """Relations whose WeCom tag list holds one of these ids (PostgreSQL: a jsonb containment per id)."""
    qs = FollowRelation.objects.exclude(wecom_tag_ids=[])
    if connection.vendor == "postgresql":
        from django.db.models import Q

        cond = Q()
        for wecom_id in wecom_ids:
            cond |= Q(wecom_tag_ids__contains=[wecom_id])
        return list(qs.filter(cond).select_related("contact"))
    return [f for f in qs.select_related("contact").iterator(chunk_size=2000) if wecom_ids & set(f.wecom_tag_ids)]


def _tags_gone(tags: list[Tag], *, source: str) -> int:
    """Tags deleted (in WeCom or pushed from here): WeCom takes them off every customer, so does the company view.
    Returns how many contacts lost one."""
    ids = {t.wecom_id for t in tags if t.wecom_id}
    if ids:
        for follow in _follows_carrying(ids):
            kept = [t for t in follow.wecom_tag_ids if t not in ids]
            FollowRelation.objects.filter(pk=follow.pk).update(wecom_tag_ids=kept)
    untagged = 0
    for contact_tag in ContactTag.objects.select_related("contact", "tag__group").filter(tag__in=tags):
        contact_tag.delete()
        untagged += 1
        timeline_add(contact_tag.contact, ContactEvent.Kind.UNTAGGED,
                     data={"tag": str(contact_tag.tag), "source": source, "tag_deleted": True})
    return untagged


def _tags_appeared(tags: list[Tag]) -> int:
    """Tags WeCom lists that the CRM did not know (or had as deleted): relations may already carry them (an
    edit_external_contact read before the tag's own change_external_tag). Returns how many contacts got one."""
    ids = {t.wecom_id: t for t in tags if t.wecom_id}
    if not ids:
        return 0
    added = 0
    for follow in _follows_carrying(set(ids)):
        if follow.deleted_by_staff_at is not None:
            continue
        for wecom_id in set(follow.wecom_tag_ids) & set(ids):
            _, created = ContactTag.objects.get_or_create(contact=follow.contact, tag=ids[wecom_id],
                                                          defaults={"staff_id": follow.staff_id})
            if created:
                added += 1
                timeline_add(follow.contact, ContactEvent.Kind.TAGGED, data={"tag": str(ids[wecom_id]),
                                                                             "source": "wecom"})
    return added


def tags_sync_from_wecom() -> dict:
    """Mirror WeCom's corp tags: create/update by WeCom id; tags gone from WeCom are marked deleted (kept) and taken
    off every contact; tags new to the CRM are put on the contacts whose relations already carry them."""
    data = get_client().get_corp_tag_list()
    now = timezone.now()
    counts = {"groups": 0, "tags": 0, "deleted": 0, "renamed": 0, "untagged": 0, "tagged": 0}
    seen_groups: set[str] = set()
    seen_tags: set[str] = set()
    appeared: list[Tag] = []
    with transaction.atomic():
        _tags_lock_exclusive()
        for g in data.get("tag_group") or []:
            if g.get("deleted"):
                continue
            group = TagGroup.objects.filter(wecom_id=g["group_id"]).first() or TagGroup.objects.filter(
                wecom_id__isnull=True, name=g["group_name"]
            ).first() or TagGroup(wecom_id=g["group_id"])
            group.wecom_id, group.name, group.order, group.deleted_at = g["group_id"], g["group_name"], g.get(
                "order", 0
            ), None
            group.save()
            seen_groups.add(g["group_id"])
            counts["groups"] += 1
            for t in g.get("tag") or []:
                if t.get("deleted"):
                    continue
                tag = Tag.objects.filter(wecom_id=t["id"]).first() or Tag.objects.filter(
                    group=group, name=t["name"]
                ).first() or Tag(group=group)
                if tag.pk is None or tag.wecom_id != t["id"] or tag.deleted_at is not None:
                    appeared.append(tag)
                elif tag.name != t["name"]:
                    counts["renamed"] += 1
                if tag.name != t["name"] and tag.pk is not None:
                    # The unique (group, name) may be held by a deleted row of that name: it gives the name up.
                    Tag.objects.filter(group=group, name=t["name"]).exclude(pk=tag.pk).exclude(
                        deleted_at__isnull=True).update(name=f"{t['name'][:40]} ~{now:%Y%m%d%H%M%S}")
                tag.group, tag.wecom_id, tag.name, tag.order, tag.deleted_at = group, t["id"], t["name"], t.get(
                    "order", 0
                ), None
                tag.save()
                seen_tags.add(t["id"])
                counts["tags"] += 1
        gone = list(Tag.objects.select_related("group").filter(wecom_id__isnull=False, deleted_at__isnull=True)
                    .exclude(wecom_id__in=seen_tags))
        Tag.objects.filter(pk__in=[t.pk for t in gone]).update(deleted_at=now)
        counts["deleted"] = len(gone)
        counts["untagged"] = _tags_gone(gone, source="wecom")
        TagGroup.objects.filter(wecom_id__isnull=False, deleted_at__isnull=True).exclude(
            wecom_id__in=seen_groups
        ).update(deleted_at=now)
        counts["tagged"] = _tags_appeared(appeared)
    return counts


# --- renames and deletes made in the CRM, pushed to WeCom -------------------------------------------


@dataclass(frozen=True)
class TagChange:
    """What a rename or delete did: `wecom` is "pushed" (WeCom changed too), "local" (never in WeCom) or
    "already_gone" (WeCom had deleted it already)."""

    obj: Tag | TagGroup
    wecom: str

    @property
    def message(self) -> str:
        return {
            "pushed": _("WeCom was updated too."),
            "local": _("It is not in WeCom yet: changed in the CRM only."),
            "already_gone": _("WeCom had already deleted it."),
        }[self.wecom]


def _clean_name(name, *, field: str = "name") -> str:
    name = (name or "").strip() if isinstance(name, str) else ""
    if not name:
        raise ApplicationError(_("Enter a name."), code="required", field=field)
    if len(name) > NAME_MAX:
        raise ApplicationError(_("At most %(n)d characters (WeCom's limit).") % {"n": NAME_MAX}, field=field)
    return name


def tag_name_validate(group: TagGroup, name, *, tag: Tag | None = None) -> str:
    """The checks a tag name passes before WeCom is asked (forms show them on the field): 1-30 characters, not
    another tag's in the group (deleted ones keep their names)."""
    name = _clean_name(name)
    if Tag.objects.filter(group=group, name=name).exclude(pk=tag.pk if tag else None).exists():
        raise ApplicationError(_("This group already has a tag of that name."), code="duplicate", field="name")
    return name


def tag_group_name_validate(name, *, group: TagGroup | None = None) -> str:
    name = _clean_name(name)
    if TagGroup.objects.filter(name=name, deleted_at__isnull=True).exclude(pk=group.pk if group else None).exists():
        raise ApplicationError(_("A tag group of that name exists."), code="duplicate", field="name")
    return name


def _wecom_still_has(wecom_id: str, *, group: bool) -> bool:
    data = get_client().get_corp_tag_list(**({"group_id": [wecom_id]} if group else {"tag_id": [wecom_id]}))
    for g in data.get("tag_group") or []:
        if group:
            if g.get("group_id") == wecom_id and not g.get("deleted"):
                return True
        elif any(t.get("id") == wecom_id and not t.get("deleted") for t in g.get("tag") or []):
            return True
    return False


def _push(call, wecom_id: str, *, group: bool, field: str | None = "name") -> str:
    """Run one edit/del call; "pushed", or "already_gone" when WeCom no longer has it. Refusals are 4xx."""
    try:
        call()
    except WeComError as exc:
        if exc.errcode == TAG_EXISTS:
            raise ApplicationError(_("WeCom already has one of that name here."), code="duplicate",
                                   field=field) from exc
        if exc.errcode != TAG_INVALID:
            raise
        if _wecom_still_has(wecom_id, group=group):
            raise ApplicationError(
                _("It was made in WeCom's admin console, and WeCom lets only the app that made a tag change it: "
                  "rename or delete it there."), code="wecom_not_owner", status_code=409) from exc
        return "already_gone"
    return "pushed"


def tag_create(group: TagGroup, name: str) -> TagChange:
    """A new tag in a group, created in WeCom too (add_corp_tag) when WeCom answers; kept local otherwise."""
    if group.deleted_at is not None:
        raise ApplicationError(_("This tag group was deleted."), code="deleted", field="group")
    name = tag_name_validate(group, name)
    tag = Tag.objects.create(group=group, name=name)
    try:
        tag = tag_push(tag)
    except WeComError:
        return TagChange(tag, "local")  # pushed when a contact gets it (contact_tags_push), or adopted by a sync
    return TagChange(tag, "pushed" if tag.wecom_id else "local")


def tag_rename(tag: Tag, name: str) -> TagChange:
    """Rename a tag: in WeCom first (edit_corp_tag; the same name twice is a no-op there too), then here."""
    tag = Tag.objects.select_related("group").get(pk=tag.pk)
    if tag.deleted_at is not None:
        raise ApplicationError(_("This tag was deleted."), code="deleted", field="name")
    name = tag_name_validate(tag.group, name, tag=tag)
    if name == tag.name:
        return TagChange(tag, "pushed" if tag.wecom_id else "local")
    wecom = "local"
    if tag.wecom_id:
        wecom = _push(lambda: get_client().edit_corp_tag(tag.wecom_id, name=name), tag.wecom_id, group=False)
        if wecom == "already_gone":
            tags_sync_from_wecom()  # deleted in WeCom meanwhile: mirror that instead of renaming a ghost
            raise ApplicationError(_("This tag was deleted in WeCom."), code="deleted", field="name")
    tag.name = name
    tag.save(update_fields=["name"])
    return TagChange(tag, wecom)


def tag_delete(tag: Tag) -> TagChange:
    """Delete a tag: in WeCom first (del_corp_tag), then here: marked deleted (kept, as for WeCom's own deletes) and
    taken off every contact, each losing it on their timeline."""
    tag = Tag.objects.select_related("group").get(pk=tag.pk)
    if tag.deleted_at is not None:
        return TagChange(tag, "already_gone")
    wecom = "local"
    if tag.wecom_id:
        wecom = _push(lambda: get_client().del_corp_tag(tag_id=[tag.wecom_id]), tag.wecom_id, group=False,
                      field=None)
    with transaction.atomic():
        tag.deleted_at = timezone.now()
        tag.save(update_fields=["deleted_at"])
        _tags_gone([tag], source="crm")
        # WeCom drops a group with its last tag; so does the CRM.
        group = tag.group
        if group.wecom_id and not group.tags.filter(deleted_at__isnull=True).exists():
            TagGroup.objects.filter(pk=group.pk, deleted_at__isnull=True).update(deleted_at=tag.deleted_at)
    return TagChange(tag, wecom)


def tag_group_rename(group: TagGroup, name: str) -> TagChange:
    group = TagGroup.objects.get(pk=group.pk)
    if group.deleted_at is not None:
        raise ApplicationError(_("This tag group was deleted."), code="deleted", field="name")
    name = tag_group_name_validate(name, group=group)
    if name == group.name:
        return TagChange(group, "pushed" if group.wecom_id else "local")
    wecom = "local"
    if group.wecom_id:
        wecom = _push(lambda: get_client().edit_corp_tag(group.wecom_id, name=name), group.wecom_id, group=True)
        if wecom == "already_gone":
            tags_sync_from_wecom()
            raise ApplicationError(_("This tag group was deleted in WeCom."), code="deleted", field="name")
    group.name = name
    group.save(update_fields=["name"])
    return TagChange(group, wecom)


def tag_group_delete(group: TagGroup) -> TagChange:
    """Delete a group and its tags (WeCom deletes a group's tags with it)."""
    group = TagGroup.objects.get(pk=group.pk)
    if group.deleted_at is not None:
        return TagChange(group, "already_gone")
    wecom = "local"
    if group.wecom_id:
        wecom = _push(lambda: get_client().del_corp_tag(group_id=[group.wecom_id]), group.wecom_id, group=True,
                      field=None)
    with transaction.atomic():
        now = timezone.now()
        tags = list(group.tags.select_related("group").filter(deleted_at__isnull=True))
        Tag.objects.filter(pk__in=[t.pk for t in tags]).update(deleted_at=now)
        _tags_gone(tags, source="crm")
        group.deleted_at = now
        group.save(update_fields=["deleted_at"])
    return TagChange(group, wecom)
