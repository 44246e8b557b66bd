"""Segments: a small JSON filter over contacts, validated and resolved to a queryset.

Shape (every key optional; the keys combine with AND):
    {"tags": [tag ids], "tags_match": "any" | "all", "exclude_tags": [tag ids],
     "channels": [channel ids], "staff": [staff userids], "vip": true}
"staff" keeps contacts with an active follow relation to one of those staff members (and makes them the
preferred senders). "vip": true is the crm tag named "VIP".
"""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.db.models import BigIntegerField, BooleanField, Exists, Expression, OuterRef, Q, QuerySet
from django.db.models.expressions import Col

from crm.errors import ApplicationError
from crm.models import Channel, Contact, ContactTag, FollowRelation, Staff, Tag

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


def _tagged(**tag_filter) -> Exists:
    return Exists(ContactTag.objects.filter(contact=OuterRef("pk"), **tag_filter))


# crm_contact.tag_ids: on PostgreSQL, the contact's tag ids (bigint[], GIN-indexed), kept equal to its ContactTag
# rows by a trigger (migration 0004). Not a model field, so that a stale Contact.save() cannot write it back; it is
# reached as a column of the query's own Contact alias, which stays right when resolve() is nested as a subquery.
_TAG_IDS = BigIntegerField()  # stands in for the column only: it names it, nothing reads it
_TAG_IDS.set_attributes_from_name("tag_ids")


class _TagIdsTest(Expression):
    """A boolean test on the contact's tag_ids: `sql` with {col} for the column, %s for each of `params`."""

    output_field = BooleanField()

    def __init__(self, sql: str, params: list, col: Col | None = None):
        super().__init__()
        self.sql, self.params, self.col = sql, params, col

    def resolve_expression(self, query=None, allow_joins=True, reuse=None, summarize=False, for_save=False):
        return _TagIdsTest(self.sql, self.params, Col(query.get_initial_alias(), _TAG_IDS))

    def get_source_expressions(self) -> list:
        return [self.col]

    def set_source_expressions(self, exprs) -> None:
        (self.col,) = exprs

    def as_sql(self, compiler, connection) -> tuple[str, list]:
        col, _ = compiler.compile(self.col)  # a plain column: no params
        return self.sql.format(col=col), list(self.params)


def _has_any(tag_ids: list[int]) -> _TagIdsTest:
    return _TagIdsTest("{col} && %s::bigint[]", [sorted(set(tag_ids))])  # GIN-indexable


def _has_all(tag_ids: list[int]) -> _TagIdsTest:
    return _TagIdsTest("{col} @> %s::bigint[]", [sorted(set(tag_ids))])  # GIN-indexable


def _has_none(tag_ids: list[int]) -> _TagIdsTest:
    return _TagIdsTest("NOT ({col} && %s::bigint[])", [sorted(set(tag_ids))])


def _tag_filters(qs: QuerySet[Contact], segment: dict, vip_ids: list[int], use_array: bool) -> QuerySet[Contact]:
    """The tag conditions. With the array, one row-local test each (`&&`, `@>`, `NOT &&`): a popular tag with an
    exclusion no longer hashes half a million ContactTag rows, and a rare one (VIP) is a GIN bitmap scan.
    Without it (SQLite), a correlated EXISTS / NOT EXISTS per condition ("all" is one EXISTS per tag)."""
    tags = segment.get("tags") or []
    exclude = segment.get("exclude_tags") or []
    if use_array:
        if tags:
            qs = qs.filter(_has_all(tags) if segment.get("tags_match") == "all" else _has_any(tags))
        if exclude:
            qs = qs.filter(_has_none(exclude))
        return qs.filter(_has_any(vip_ids)) if vip_ids else qs
    if tags and segment.get("tags_match") == "all":
        for tag_id in sorted(set(tags)):
            qs = qs.filter(_tagged(tag_id=tag_id))
    elif tags:
        qs = qs.filter(_tagged(tag_id__in=tags))
    if exclude:
        qs = qs.exclude(_tagged(tag_id__in=exclude))
    return qs.filter(_tagged(tag_id__in=vip_ids)) if vip_ids else qs


def resolve(segment: dict, *, use_tag_array: bool | None = None) -> QuerySet[Contact]:
    """The contacts a (validated) segment selects, distinct, ordered by id.

    Tag conditions test crm_contact.tag_ids on PostgreSQL (use_tag_array, default: whether the database is
    PostgreSQL; tests pass False to compare with the EXISTS form). Staff is a correlated EXISTS, which PostgreSQL
    runs as a semi-join or an index-only probe of (contact, staff) per candidate: no DISTINCT, no GROUP BY, and no
    `NOT IN (subquery)`, which it can only hash within work_mem and otherwise re-runs per contact. The VIP tag
    and the staff are looked up first (tiny tables): with their ids as constants the planner knows how few rows
    they select."""
    if use_tag_array is None:
        use_tag_array = connection.vendor == "postgresql"
    vip_ids: list[int] = []
    if segment.get("vip"):
        vip_ids = list(Tag.objects.filter(name=VIP_TAG_NAME).values_list("id", flat=True))
        if not vip_ids:
            return Contact.objects.none()
    qs = _tag_filters(Contact.objects.all(), segment, vip_ids, use_tag_array)
    if segment.get("channels"):
        qs = qs.filter(channel_id__in=segment["channels"])
    if segment.get("staff"):
        # active_follow_q, split: the staff half here, the relation half in the EXISTS.
        senders = list(
            Staff.objects.filter(
                userid__in=segment["staff"], status=Staff.Status.ACTIVE, has_customer_contact=True
            ).values_list("id", flat=True)
        )
        if not senders:
            return Contact.objects.none()
        follows = FollowRelation.objects.filter(
            contact=OuterRef("pk"), staff_id__in=senders, deleted_by_staff_at__isnull=True
        )
        qs = qs.filter(Exists(follows))
    return qs.order_by("id")
