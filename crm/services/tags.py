"""Corp customer tags: synced from WeCom (get_corp_tag_list), crm-side tags, and tagging contacts (audited)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from crm.errors import ApplicationError
from crm.models.contacts import Contact, ContactEvent
from crm.models.staff import Staff
from crm.models.tags import ContactTag, Tag, TagGroup
from crm.services.timeline import timeline_add
from crm.wecom.client import get_client
from crm.wecom.errors import WeComError

TAG_EXISTS = 40071
RELATION_GONE = frozenset({84061, 40096})


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


def tags_sync_from_wecom() -> dict:
    """Mirror WeCom's corp tags: create/update by WeCom id; tags gone from WeCom are marked deleted (kept)."""
    data = get_client().get_corp_tag_list()
    now = timezone.now()
    counts = {"groups": 0, "tags": 0, "deleted": 0}
    seen_groups: set[str] = set()
    seen_tags: set[str] = set()
    with transaction.atomic():
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
                tag.group, tag.wecom_id, tag.name, tag.order, tag.deleted_at = group, t["id"], t["name"], t.get(
                    "order", 0
                ), None
                tag.save()
                seen_tags.add(t["id"])
                counts["tags"] += 1
        counts["deleted"] += Tag.objects.filter(wecom_id__isnull=False, deleted_at__isnull=True).exclude(
            wecom_id__in=seen_tags
        ).update(deleted_at=now)
        TagGroup.objects.filter(wecom_id__isnull=False, deleted_at__isnull=True).exclude(
            wecom_id__in=seen_groups
        ).update(deleted_at=now)
    return counts
