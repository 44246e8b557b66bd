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


def contact_tag_add(contact: Contact, tag: Tag, *, staff: Staff | None = None, source: str = "crm") -> bool:
    """Put a tag on a contact (company view). Returns False if it was already there."""
    _, created = ContactTag.objects.get_or_create(contact=contact, tag=tag, defaults={"staff": staff})
    if created:
        timeline_add(contact, ContactEvent.Kind.TAGGED, staff=staff, data={"tag": str(tag), "source": source})
    return created


def contact_tag_remove(contact: Contact, tag: Tag, *, staff: Staff | None = None, source: str = "crm") -> bool:
    deleted, _ = ContactTag.objects.filter(contact=contact, tag=tag).delete()
    if deleted:
        timeline_add(contact, ContactEvent.Kind.UNTAGGED, staff=staff, data={"tag": str(tag), "source": source})
    return bool(deleted)


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
