"""Segments: a small JSON filter over contacts, validated and resolved to a queryset.

Shape (every key optional; the keys combine with AND):
    {"tags": [tag ids], "tags_match": "any" | "all", "exclude_tags": [tag ids],
     "channels": [channel ids], "staff": [staff userids], "vip": true}
"staff" keeps contacts with an active follow relation to one of those staff members (and makes them the
preferred senders). "vip": true is the crm tag named "VIP".
"""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q, QuerySet

from crm.errors import ApplicationError
from crm.models import Channel, Contact, Staff, Tag

VIP_TAG_NAME = "VIP"
_KEYS = {"tags", "tags_match", "exclude_tags", "channels", "staff", "vip"}


def _id_list(segment: dict, key: str) -> list[int]:
    value = segment.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ApplicationError(f"{key} must be a list of ids.", field=f"segment.{key}")
    return value


def segment_validate(segment: Any) -> dict:
    """The normalised segment, or a 400 ApplicationError naming the offending `segment.<key>`."""
    if segment is None:
        return {}
    if not isinstance(segment, dict):
        raise ApplicationError("segment must be an object.", field="segment")
    unknown = set(segment) - _KEYS
    if unknown:
        raise ApplicationError(f"Unknown segment key: {sorted(unknown)[0]}.", field=f"segment.{sorted(unknown)[0]}")
    out: dict[str, Any] = {}
    for key, model in (("tags", Tag), ("exclude_tags", Tag), ("channels", Channel)):
        ids = _id_list(segment, key)
        if ids:
            found = set(model.objects.filter(id__in=ids).values_list("id", flat=True))
            missing = [i for i in ids if i not in found]
            if missing:
                raise ApplicationError(f"Unknown id {missing[0]} in {key}.", field=f"segment.{key}")
            out[key] = sorted(set(ids))
    match = segment.get("tags_match", "any")
    if match not in ("any", "all"):
        raise ApplicationError('tags_match must be "any" or "all".', field="segment.tags_match")
    if "tags" in out:
        out["tags_match"] = match
    staff = segment.get("staff", [])
    if not isinstance(staff, list) or not all(isinstance(s, str) and s for s in staff):
        raise ApplicationError("staff must be a list of userids.", field="segment.staff")
    if staff:
        found = set(Staff.objects.filter(userid__in=staff).values_list("userid", flat=True))
        missing = [s for s in staff if s not in found]
        if missing:
            raise ApplicationError(f"Unknown staff {missing[0]}.", field="segment.staff")
        out["staff"] = sorted(set(staff))
    vip = segment.get("vip", False)
    if not isinstance(vip, bool):
        raise ApplicationError("vip must be true or false.", field="segment.vip")
    if vip:
        out["vip"] = True
    return out


def active_follow_q(prefix: str = "follows__") -> Q:
    """A follow relation through which a mass message can be sent: not deleted by staff, staff active."""
    return Q(
        **{
            f"{prefix}deleted_by_staff_at__isnull": True,
            f"{prefix}staff__status": Staff.Status.ACTIVE,
            f"{prefix}staff__has_customer_contact": True,
        }
    )


def resolve(segment: dict) -> QuerySet[Contact]:
    """The contacts a (validated) segment selects, distinct, ordered by id."""
    qs = Contact.objects.all()
    tags = segment.get("tags") or []
    if tags:
        if segment.get("tags_match") == "all":
            matched = (
                Contact.objects.filter(contact_tags__tag_id__in=tags)
                .annotate(n=Count("contact_tags__tag_id", distinct=True))
                .filter(n=len(set(tags)))
                .values("id")
            )
            qs = qs.filter(id__in=matched)
        else:
            qs = qs.filter(id__in=Contact.objects.filter(contact_tags__tag_id__in=tags).values("id"))
    if segment.get("exclude_tags"):
        qs = qs.exclude(id__in=Contact.objects.filter(contact_tags__tag_id__in=segment["exclude_tags"]).values("id"))
    if segment.get("vip"):
        qs = qs.filter(id__in=Contact.objects.filter(contact_tags__tag__name=VIP_TAG_NAME).values("id"))
    if segment.get("channels"):
        qs = qs.filter(channel_id__in=segment["channels"])
    if segment.get("staff"):
        follows = Contact.objects.filter(active_follow_q(), follows__staff__userid__in=segment["staff"])
        qs = qs.filter(id__in=follows.values("id"))
    return qs.order_by("id")
