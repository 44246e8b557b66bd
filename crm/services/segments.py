"""The filter language: one definition of "which contacts", shared by the contacts list, saved segments, the API
and campaigns (docs/campaign-engine.md, section 1).

    node      := {"all": [node, ...]} | {"any": [node, ...]} | {"not": node} | condition
    condition := {"field": NAME, "op": OP, "value": VALUE, ...extra keys the field defines}
    {} (or {"all": []}) selects every contact; {"any": []} selects none.

Fields live in a registry (`register_field`): crm registers its own here; loyalty registers tier, points, spend,
last_purchase and bought from LoyaltyConfig.ready() (crm never imports loyalty). A field validates its condition
(normalising the value, naming the bad part by its path, e.g. `segment.all[1].value`) and builds a Q over Contact
made only of the contact's own columns and correlated EXISTS tests: no joins, so the result is distinct without
DISTINCT, a NOT is a plain NOT / NOT EXISTS (an anti-join), and the whole can be nested as a subquery.

The old flat shape ({"tags": [...], "tags_match": ..., "exclude_tags": ..., "channels": ..., "staff": ...,
"vip": true}) is still accepted and converted into the tree on validation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection, transaction
from django.db.models import BigIntegerField, BooleanField, Exists, Expression, OuterRef, Q, QuerySet
from django.db.models.expressions import Col
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from crm.errors import ApplicationError
from crm.models import (
    Channel,
    ConsentRecord,
    Contact,
    ContactTag,
    CustomerGroup,
    DataSource,
    FollowRelation,
    GroupMember,
    Segment,
    SourceOrderLine,
    Staff,
    Tag,
)

VIP_TAG_NAME = "VIP"
SHANGHAI = ZoneInfo("Asia/Shanghai")
MAX_DEPTH = 12
MAX_NODES = 300
# For a count, per statement (segment_count): no JIT (its compile time, seconds for these plans, is wasted on a
# count that takes a fraction of that) and room in work_mem for the semi-joins' hash tables.
COUNT_SETTINGS = [("work_mem", "64MB"), ("jit", "off")]
_LEGACY_KEYS = {"tags", "tags_match", "exclude_tags", "channels", "staff", "vip"}
_NODE_KEYS = {"all", "any", "not"}
WECOM_SOURCE = "wecom"

OP_LABELS = {
    "any": _("has any of"),
    "all": _("has all of"),
    "none": _("has none of"),
    "in": _("is one of"),
    "not_in": _("is none of"),
    "gte": _("at least"),
    "lte": _("at most"),
    "between": _("between"),
    "before": _("before"),
    "after": _("after"),
    "is": _("is"),
    "granted": _("granted"),
    "withdrawn": _("withdrawn"),
}


# --- SQL building blocks --------------------------------------------------------------------------------------

# crm_contact.tag_ids: on PostgreSQL, the contact's tag ids (bigint[], GIN-indexed), kept equal to its ContactTag
# rows by a trigger (migration 0004). Not a model field, so that a stale Contact.save() cannot write it back; it is
# reached as a column of the query's own Contact alias, which stays right when resolve() is nested as a subquery.
_TAG_IDS = BigIntegerField()  # stands in for the column only: it names it, nothing reads it
_TAG_IDS.set_attributes_from_name("tag_ids")
_ROW_COLUMNS: dict[str, BigIntegerField] = {"tag_ids": _TAG_IDS}


def register_row_column(name: str) -> None:
    """A column another app's migration keeps on crm_contact by triggers (as tag_ids), for ContactSql tests."""
    column = BigIntegerField()
    column.set_attributes_from_name(name)
    _ROW_COLUMNS[name] = column


class ContactSql(Expression):
    """A boolean test written in SQL over the query's own Contact row: `sql` with {col} for the column (`id` or
    `tag_ids`), %s for each of `params`. For the tests the ORM cannot say well (an EXISTS over a grouped derived
    table, the tag array operators); datetimes in params are adapted for the database in use."""

    output_field = BooleanField()

    def __init__(self, sql: str, params: list, column: str = "id", col: Col | None = None):
        super().__init__()
        self.sql, self.params, self.column, self.col = sql, params, column, col

    def resolve_expression(self, query=None, allow_joins=True, reuse=None, summarize=False, for_save=False):
        target = _ROW_COLUMNS.get(self.column) or Contact._meta.get_field(self.column)
        return ContactSql(self.sql, self.params, self.column, Col(query.get_initial_alias(), target))

    def get_source_expressions(self) -> list:
        return [self.col]

    def set_source_expressions(self, exprs) -> None:
        (self.col,) = exprs

    def as_sql(self, compiler, connection) -> tuple[str, list]:
        col, _ = compiler.compile(self.col)  # a plain column: no params
        params = [connection.ops.adapt_datetimefield_value(p) if isinstance(p, datetime) else p for p in self.params]
        return self.sql.format(col=col), params


def placeholders(values: list) -> str:
    """`%s, %s, ...` for an IN list (portable: SQLite has no arrays)."""
    return ", ".join(["%s"] * len(values))


def use_arrays() -> bool:
    return connection.vendor == "postgresql"


def _tag_array_test(op: str, tag_ids: list[int]) -> ContactSql:
    sql = {
        "any": "{col} && %s::bigint[]",
        "all": "{col} @> %s::bigint[]",  # GIN-indexable
        "none": "NOT ({col} && %s::bigint[])",
    }[op]
    return ContactSql(sql, [sorted(set(tag_ids))], column="tag_ids")


NOTHING = Q(pk__in=[])


@dataclass
class Members:
    """The contacts whose id is in a set: `qs`, a queryset whose `column` holds contact ids, or `sql`, a SELECT
    whose `contact_id` column does (with %s `params`). `negated`: the contacts NOT in it.

    A field returns this rather than an EXISTS so that _build can write the form PostgreSQL plans well where the
    condition stands: in the top-level AND, `id IN (...)` / `NOT EXISTS (...)` (a semi- / anti-join, one pass over
    the set); under an OR, `id IN` / `NOT id IN (...)`, a hashed subplan. A correlated EXISTS under an OR is an
    "alternative subplan" that PostgreSQL (15) costs as if re-run per contact: estimates in the billions then pick
    index scans over 1M rows and JIT-compile for seconds."""

    qs: QuerySet | None = None
    column: str = "contact_id"
    sql: str = ""
    params: list = dc_field(default_factory=list)
    negated: bool = False
    # The same test on the contact's own row (a trigger-kept column), where there is one: taken under an OR,
    # where the set would be a hashed subplan probed once per contact. Exact under NOT: never NULL.
    row: ContactSql | None = None

    def __invert__(self) -> Members:
        return Members(self.qs, self.column, self.sql, self.params, not self.negated, self.row)

    def q(self, *, negate: bool, top: bool) -> Q:
        out = negate != self.negated
        if self.row is not None and not top:
            return ~Q(self.row) if out else Q(self.row)
        if self.qs is not None:
            if not out:
                return Q(pk__in=self.qs.values(self.column))
            if top:
                return ~Q(Exists(self.qs.filter(**{self.column: OuterRef("pk")})))
            return ~Q(pk__in=self.qs.filter(**{f"{self.column}__isnull": False}).values(self.column))
        # self.sql is the fields' own SQL (table names, fixed fragments, %s for every value).
        if not out:
            template = "{{col}} IN (SELECT s.contact_id FROM ({sql}) s)"
        elif top:
            template = "NOT EXISTS (SELECT 1 FROM ({sql}) s WHERE s.contact_id = {{col}})"
        else:
            template = "NOT ({{col}} IN (SELECT s.contact_id FROM ({sql}) s WHERE s.contact_id IS NOT NULL))"
        return Q(ContactSql(template.format(sql=self.sql), self.params))


class AllOf(list):
    """Several parts a field's condition needs together (e.g. bought ever, and not since D)."""


class AnyOf(list):
    """Several parts, any of which will do."""


def active_follow_q(prefix: str = "follows__") -> Q:
    """A follow relation through which a mass message can be sent: not deleted by staff, staff active."""
    return Q(
        **{
            f"{prefix}deleted_by_staff_at__isnull": True,
            f"{prefix}staff__status": Staff.Status.ACTIVE,
            f"{prefix}staff__has_customer_contact": True,
        }
    )


def day_start(day: date) -> datetime:
    """Midnight of an Asia/Shanghai day, as an aware datetime."""
    return datetime.combine(day, time.min, tzinfo=SHANGHAI)


def window_start(days: int) -> datetime:
    """The start of "the last N days": midnight (Asia/Shanghai) N-1 days before today, so today counts."""
    today = timezone.now().astimezone(SHANGHAI).date()
    return day_start(today - timedelta(days=days - 1))


# --- The registry ---------------------------------------------------------------------------------------------


@dataclass
class Ctx:
    """What a field's build may need: which tag path to take, the saved segments being expanded (cycles)."""

    use_tag_array: bool
    expanding: tuple[int, ...] = ()


@dataclass
class FieldSpec:
    """A field of the language.

    validate(condition, path) -> the condition's normalised value and extras (a dict merged into the condition);
    it raises ApplicationError with `field=f"{path}.value"` (or `.days` ...) for a bad part. build(condition, ctx)
    -> a Q over the contact's own columns (no joins), or Members (a set of contact ids), or AllOf / AnyOf of
    those. choices() -> [{"value", "label"}].
    """

    label: Any
    ops: tuple[str, ...]
    kind: str
    validate: Callable[[dict, str], dict]
    build: Callable[[dict, Ctx], Q]
    choices: Callable[[], list[dict]] | None = None
    extra: tuple[str, ...] = ()
    help: Any = ""
    group: str = "crm"
    order: int = dc_field(default=100)


_FIELDS: dict[str, FieldSpec] = {}


def register_field(name: str, spec: FieldSpec | dict) -> None:
    """Add (or replace, on a re-run of ready()) a field of the language."""
    _FIELDS[name] = spec if isinstance(spec, FieldSpec) else FieldSpec(**spec)


def segment_fields() -> list[dict]:
    """The catalogue the builder renders: each field with its label, ops (with labels), value kind and choices."""
    out = []
    for name, spec in sorted(_FIELDS.items(), key=lambda kv: (kv[1].order, kv[0])):
        out.append({
            "name": name, "label": str(spec.label), "group": spec.group, "kind": spec.kind,
            "ops": [{"op": op, "label": str(OP_LABELS.get(op, op))} for op in spec.ops],
            "extra": list(spec.extra), "help": str(spec.help),
            "choices": spec.choices() if spec.choices else None,
        })  # fmt: skip
    return out


# --- Value checks (shared by the fields, loyalty's too) -------------------------------------------------------


def bad(message: str, path: str) -> ApplicationError:
    return ApplicationError(message, field=path)


BIGINT_MAX = 2**63 - 1  # a JSON number past PostgreSQL's bigint cannot be compared with a column: a 500


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and -BIGINT_MAX - 1 <= v <= BIGINT_MAX


def int_list(value: Any, path: str, *, allow_single: bool = False) -> list[int]:
    if allow_single and is_int(value):
        value = [value]
    if not isinstance(value, list) or not value or not all(is_int(v) for v in value):
        raise bad(str(_("Must be a non-empty list of ids.")), path)
    return sorted(set(value))


def str_list(value: Any, path: str) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise bad(str(_("Must be a non-empty list of names.")), path)
    return sorted({v.strip() for v in value})


def known_ids(model, ids: list, path: str, attr: str = "id") -> list:
    found = set(model.objects.filter(**{f"{attr}__in": ids}).values_list(attr, flat=True))
    missing = [i for i in ids if i not in found]
    if missing:
        raise bad(str(_("Unknown %(what)s: %(id)s.") % {"what": model._meta.verbose_name, "id": missing[0]}), path)
    return ids


def amount(value: Any, op: str, path: str) -> int | list[int]:
    """An int >= 0 for gte/lte, [lo, hi] with lo <= hi for between."""
    if op == "between":
        if (
            not isinstance(value, list)
            or len(value) != 2
            or not all(is_int(v) and v >= 0 for v in value)
            or value[0] > value[1]
        ):
            raise bad(str(_("Must be [low, high], two whole numbers >= 0 with low <= high.")), path)
        return list(value)
    if not is_int(value) or value < 0:
        raise bad(str(_("Must be a whole number >= 0.")), path)
    return value


def parse_day(value: Any, path: str) -> date:
    try:
        return date.fromisoformat(value) if isinstance(value, str) and len(value) == 10 else _raise()
    except ValueError:
        raise bad(str(_("Must be a date, YYYY-MM-DD.")), path) from None


def _raise():
    raise ValueError


def days_extra(cond: dict, path: str, *, default: int | None) -> int | None:
    days = cond.get("days", default)
    if days is None:
        return None
    if not is_int(days) or not 1 <= days <= 3660:
        raise bad(str(_("days must be a whole number from 1 to 3660.")), f"{path}.days")
    return days


# --- crm's fields ---------------------------------------------------------------------------------------------


def _v_tags(cond: dict, path: str) -> dict:
    return {"value": known_ids(Tag, int_list(cond.get("value"), f"{path}.value"), f"{path}.value")}


def _b_tags(cond: dict, ctx: Ctx) -> Q:
    op, ids = cond["op"], cond["value"]
    if not ids:  # only the legacy "vip" conversion makes an empty list (no tag named VIP)
        return Q() if op in ("all", "none") else NOTHING
    if ctx.use_tag_array:
        return Q(_tag_array_test(op, ids))
    tagged = ContactTag.objects.filter(tag_id__in=ids)
    if op == "any":
        return Members(tagged)
    if op == "none":
        return ~Members(tagged)
    return AllOf(Members(ContactTag.objects.filter(tag_id=tag_id)) for tag_id in ids)  # "all": one per tag


def _tag_choices() -> list[dict]:
    return [
        {"value": t.id, "label": str(t)}
        for t in Tag.objects.filter(deleted_at__isnull=True)
        .select_related("group")
        .order_by("group__name", "name")[:2000]
    ]


def _v_channel(cond: dict, path: str) -> dict:
    return {"value": known_ids(Channel, int_list(cond.get("value"), f"{path}.value"), f"{path}.value")}


def _b_channel(cond: dict, ctx: Ctx) -> Q:
    return Q(channel_id__in=cond["value"])


def _v_staff(cond: dict, path: str) -> dict:
    userids = str_list(cond.get("value"), f"{path}.value")
    return {"value": known_ids(Staff, userids, f"{path}.value", attr="userid")}


def _b_staff(cond: dict, ctx: Ctx) -> Q:
    # active_follow_q, split: the staff half looked up first (a tiny table: with their ids as constants the planner
    # knows how few rows they select), the relation half a correlated EXISTS, which PostgreSQL runs as a semi-join
    # or an index-only probe of (contact, staff) per candidate: no DISTINCT, no NOT IN.
    senders = list(
        Staff.objects.filter(
            userid__in=cond["value"], status=Staff.Status.ACTIVE, has_customer_contact=True
        ).values_list("id", flat=True)
    )
    if not senders:
        return NOTHING
    return Members(FollowRelation.objects.filter(staff_id__in=senders, deleted_by_staff_at__isnull=True))


def _v_group(cond: dict, path: str) -> dict:
    chat_ids = str_list(cond.get("value"), f"{path}.value")
    return {"value": known_ids(CustomerGroup, chat_ids, f"{path}.value", attr="chat_id")}


def _members(group_ids: list[int]) -> Q:
    if not group_ids:
        return NOTHING
    return Members(GroupMember.objects.filter(group_id__in=group_ids, left_at__isnull=True))


def _b_group(cond: dict, ctx: Ctx) -> Q:
    return _members(list(CustomerGroup.objects.filter(chat_id__in=cond["value"]).values_list("id", flat=True)))


def _v_vip_group(cond: dict, path: str) -> dict:
    if cond.get("value", True) is not True:
        raise bad(str(_("Must be true.")), f"{path}.value")
    return {"value": True}


def _b_vip_group(cond: dict, ctx: Ctx) -> Q:
    ids = CustomerGroup.objects.filter(is_vip=True, status=CustomerGroup.Status.ACTIVE).values_list("id", flat=True)
    return _members(list(ids))


def _v_consent(cond: dict, path: str) -> dict:
    purpose = cond.get("value")
    if purpose not in ConsentRecord.Purpose.values:
        raise bad(
            str(_("Must be one of: %(choices)s.") % {"choices": ", ".join(ConsentRecord.Purpose.values)}),
            f"{path}.value",
        )
    return {"value": purpose}


def _b_consent(cond: dict, ctx: Ctx) -> Q:
    """The latest record per purpose decides. On PostgreSQL, read off crm_segment_consent, the version in force per
    (purpose, contact) that migration 0013's triggers keep (an index-only range); elsewhere a record with no later
    version (NOT EXISTS)."""
    granted = cond["op"] == "granted"
    if ctx.use_tag_array:
        return Members(
            sql="SELECT d.contact_id FROM crm_segment_consent d WHERE d.purpose = %s AND d.granted = %s",
            params=[cond["value"], granted],
        )
    newer = ConsentRecord.objects.filter(
        contact=OuterRef("contact"), purpose=cond["value"], version__gt=OuterRef("version")
    )
    latest = ConsentRecord.objects.filter(purpose=cond["value"], granted=granted)
    return Members(latest.exclude(Exists(newer)))


def _moment(value: Any, path: str, *, end: bool = False) -> datetime:
    """A date (Asia/Shanghai day: its start, or with end=True the next day's start) or an ISO datetime (exact)."""
    if isinstance(value, str) and len(value) > 10:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise bad(str(_("Must be a date, YYYY-MM-DD, or an ISO datetime.")), path) from None
        return moment if timezone.is_aware(moment) else moment.replace(tzinfo=SHANGHAI)
    day = parse_day(value, path)
    return day_start(day + timedelta(days=1) if end else day)


def _v_added(cond: dict, path: str) -> dict:
    value = cond.get("value")
    if cond["op"] == "between":
        if not isinstance(value, list) or len(value) != 2:
            raise bad(str(_("Must be [from, to], two dates YYYY-MM-DD.")), f"{path}.value")
        start, stop = _moment(value[0], f"{path}.value[0]"), _moment(value[1], f"{path}.value[1]", end=True)
        if stop <= start:
            raise bad(str(_("to is before from.")), f"{path}.value")
        return {"value": list(value)}
    _moment(value, f"{path}.value")
    return {"value": value}


def _b_added(cond: dict, ctx: Ctx) -> Q:
    """between [a, b]: days a to b inclusive; before D: earlier than day D; after D: later than day D. An ISO
    datetime instead of a date is the exact moment (before: earlier than it; after: at it or later)."""
    op, value = cond["op"], cond["value"]
    if op == "between":
        return Q(first_added_at__gte=_moment(value[0], ""), first_added_at__lt=_moment(value[1], "", end=True))
    if op == "before":
        return Q(first_added_at__lt=_moment(value, ""))
    return Q(first_added_at__gte=_moment(value, "", end=True))


def _source_codes() -> list[str]:
    return [
        WECOM_SOURCE,
        *DataSource.objects.exclude(code=WECOM_SOURCE).order_by("code").values_list("code", flat=True),
    ]


def _v_source(cond: dict, path: str) -> dict:
    codes = str_list(cond.get("value"), f"{path}.value")
    known = set(_source_codes())
    unknown = [c for c in codes if c not in known]
    if unknown:
        raise bad(str(_("Unknown source: %(code)s.") % {"code": unknown[0]}), f"{path}.value")
    return {"value": codes}


def _b_source(cond: dict, ctx: Ctx) -> Q:
    """wecom: added in WeCom (a follow relation, today or before); any other source: order lines from it."""
    codes = cond["value"]
    parts = AnyOf()
    if WECOM_SOURCE in codes:
        parts.append(Members(FollowRelation.objects.all()))
    ids = list(DataSource.objects.filter(code__in=codes).exclude(code=WECOM_SOURCE).values_list("id", flat=True))
    if ids:
        parts.append(Members(SourceOrderLine.objects.filter(source_id__in=ids)))
    return parts


def _v_segment(cond: dict, path: str) -> dict:
    ids = int_list(cond.get("value"), f"{path}.value", allow_single=True)
    return {"value": known_ids(Segment, ids, f"{path}.value")}


def _b_segment(cond: dict, ctx: Ctx) -> Q:
    parts = AnyOf()
    for seg_id, definition in Segment.objects.filter(id__in=cond["value"]).values_list("id", "definition"):
        if seg_id in ctx.expanding:  # validation refuses cycles; a hand-edited row must not loop forever
            raise bad(str(_("Saved segment %(id)s refers to itself.") % {"id": seg_id}), "segment")
        parts.append(Saved(_stored(definition, seg_id), Ctx(ctx.use_tag_array, (*ctx.expanding, seg_id))))
    return parts


def _stored(definition: Any, seg_id: int) -> dict:
    """A saved definition, normalised; one naming something since gone (a tag...) is kept as it is, when it is a
    tree, rather than failing the whole query (the condition then matches nobody)."""
    try:
        return segment_validate(definition, field="definition", segment_id=seg_id)
    except ApplicationError:
        if isinstance(definition, dict) and set(definition) & (_NODE_KEYS | {"field"}):
            return definition
        return {"any": []}


@dataclass
class Saved:
    """A saved segment's definition, built in place (so NOT and position apply to its own conditions)."""

    definition: dict
    ctx: Ctx


def _saved_refs(node: Any) -> set[int]:
    """The saved segment ids a (normalised) definition refers to."""
    if not isinstance(node, dict):
        return set()
    if "all" in node or "any" in node:
        return set().union(*(_saved_refs(n) for n in node.get("all", node.get("any")) or []))
    if "not" in node:
        return _saved_refs(node["not"])
    if node.get("field") == "segment":
        value = node.get("value")
        return set(value if isinstance(value, list) else [value])
    return set()


def _check_cycles(refs: set[int], self_id: int | None, path: str) -> None:
    """Refuse a definition whose saved segments lead (through theirs) back to `self_id` or round in a loop."""
    stack: list[tuple[int, tuple[int, ...]]] = [(r, ()) for r in refs]
    definitions: dict[int, Any] = {}
    while stack:
        seg_id, trail = stack.pop()
        if seg_id == self_id or seg_id in trail:
            raise bad(str(_("Saved segments may not refer to each other in a loop.")), path)
        if seg_id not in definitions:
            definitions[seg_id] = Segment.objects.filter(id=seg_id).values_list("definition", flat=True).first()
        stack.extend((r, (*trail, seg_id)) for r in _saved_refs(definitions[seg_id]))


def _choices(model, value_attr: str, label: Callable[[Any], str], **filters) -> Callable[[], list[dict]]:
    def choices() -> list[dict]:
        return [{"value": getattr(o, value_attr), "label": label(o)} for o in model.objects.filter(**filters)[:2000]]

    return choices


register_field("tags", FieldSpec(_("Tags"), ("any", "all", "none"), "ids", _v_tags, _b_tags, _tag_choices, order=10))
register_field(
    "channel",
    FieldSpec(
        _("Channel"), ("in",), "ids", _v_channel, _b_channel, _choices(Channel, "id", lambda c: c.name), order=60
    ),
)
register_field(
    "staff",
    FieldSpec(
        _("Following staff"),
        ("in",),
        "strings",
        _v_staff,
        _b_staff,
        _choices(Staff, "userid", lambda s: s.name or s.userid, status=Staff.Status.ACTIVE),
        help=_("An active follow relation; these staff also send the campaign."),
        order=70,
    ),
)
register_field(
    "group",
    FieldSpec(
        _("Customer group member"),
        ("in",),
        "strings",
        _v_group,
        _b_group,
        _choices(CustomerGroup, "chat_id", lambda g: g.name or g.chat_id, status=CustomerGroup.Status.ACTIVE),
        order=80,
    ),
)
register_field("vip_group", FieldSpec(_("In a VIP group"), ("is",), "bool", _v_vip_group, _b_vip_group, order=81))
register_field(
    "consent",
    FieldSpec(
        _("Consent"),
        ("granted", "withdrawn"),
        "choice",
        _v_consent,
        _b_consent,
        lambda: [{"value": v, "label": str(lbl)} for v, lbl in ConsentRecord.Purpose.choices],
        help=_("The latest decision for the purpose."),
        order=90,
    ),
)
register_field(
    "added",
    FieldSpec(
        _("Added"),
        ("between", "before", "after"),
        "date",
        _v_added,
        _b_added,
        help=_("Days in Asia/Shanghai time."),
        order=100,
    ),
)
register_field(
    "source",
    FieldSpec(
        _("Source"),
        ("in",),
        "strings",
        _v_source,
        _b_source,
        lambda: [{"value": c, "label": c} for c in _source_codes()],
        order=110,
    ),
)
register_field(
    "segment",
    FieldSpec(
        _("Saved segment"), ("in",), "ids", _v_segment, _b_segment, _choices(Segment, "id", lambda s: s.name), order=120
    ),
)


# --- Validation -----------------------------------------------------------------------------------------------


class _Budget:
    def __init__(self) -> None:
        self.nodes = 0


def _validate_node(node: Any, path: str, depth: int, budget: _Budget) -> dict:
    budget.nodes += 1
    if budget.nodes > MAX_NODES or depth > MAX_DEPTH:
        raise bad(str(_("The definition is too large or too deeply nested.")), path)
    if not isinstance(node, dict):
        raise bad(str(_("Must be an object.")), path)
    if not node:
        return {}  # every contact
    keys = sorted(set(node) & _NODE_KEYS)
    if keys:
        key = keys[0]
        extra = set(node) - {key}
        if extra:
            raise bad(str(_('A node is one of "all", "any", "not" or a condition.')), f"{path}.{sorted(extra)[0]}")
        if key == "not":
            return {"not": _validate_node(node["not"], f"{path}.not", depth + 1, budget)}
        children = node[key]
        if not isinstance(children, list):
            raise bad(str(_("Must be a list of nodes.")), f"{path}.{key}")
        return {key: [_validate_node(c, f"{path}.{key}[{i}]", depth + 1, budget) for i, c in enumerate(children)]}
    if "field" not in node:
        raise bad(str(_('A condition needs a "field".')), f"{path}.field")
    return _validate_condition(node, path)


def _validate_condition(cond: dict, path: str) -> dict:
    name = cond.get("field")
    spec = _FIELDS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise bad(str(_("Unknown field: %(name)s.") % {"name": name}), f"{path}.field")
    op = cond.get("op")
    if op not in spec.ops:
        raise bad(str(_("%(field)s takes op %(ops)s.") % {"field": name, "ops": " | ".join(spec.ops)}), f"{path}.op")
    unknown = set(cond) - {"field", "op", "value", *spec.extra}
    if unknown:
        raise bad(str(_("Unknown key: %(key)s.") % {"key": sorted(unknown)[0]}), f"{path}.{sorted(unknown)[0]}")
    return {"field": name, "op": op, **spec.validate(cond, path)}


def _convert_legacy(segment: dict, path: str) -> dict:
    """The old flat shape, checked with its own paths (`segment.tags`...), as the tree."""
    unknown = set(segment) - _LEGACY_KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise bad(str(_("Unknown segment key: %(key)s.") % {"key": key}), f"{path}.{key}")
    conditions: list[dict] = []
    match = segment.get("tags_match", "any")
    if match not in ("any", "all"):
        raise bad(str(_('tags_match must be "any" or "all".')), f"{path}.tags_match")
    for key, op in (("tags", match), ("exclude_tags", "none")):
        if segment.get(key) not in (None, []):
            ids = known_ids(Tag, int_list(segment[key], f"{path}.{key}"), f"{path}.{key}")
            conditions.append({"field": "tags", "op": op, "value": ids})
        elif key in segment and not isinstance(segment[key], list):
            raise bad(str(_("Must be a list of ids.")), f"{path}.{key}")
    if segment.get("channels") not in (None, []):
        ids = known_ids(Channel, int_list(segment["channels"], f"{path}.channels"), f"{path}.channels")
        conditions.append({"field": "channel", "op": "in", "value": ids})
    if segment.get("staff") not in (None, []):
        userids = str_list(segment["staff"], f"{path}.staff")
        conditions.append(
            {"field": "staff", "op": "in", "value": known_ids(Staff, userids, f"{path}.staff", attr="userid")}
        )
    vip = segment.get("vip", False)
    if not isinstance(vip, bool):
        raise bad(str(_("vip must be true or false.")), f"{path}.vip")
    if vip:  # the crm tag(s) named "VIP", as they are now; none means nobody
        ids = sorted(Tag.objects.filter(name=VIP_TAG_NAME).values_list("id", flat=True))
        conditions.append({"field": "tags", "op": "any", "value": ids} if ids else {"any": []})
    return {"all": conditions} if conditions else {}


def segment_validate(definition: Any, *, field: str = "segment", segment_id: int | None = None) -> dict:
    """The normalised tree, or an ApplicationError (400) whose `field` is the path of the bad part, e.g.
    `segment.all[1].value`. `segment_id`: the saved segment being edited (it may not refer to itself)."""
    if definition is None or definition == {}:
        return {}
    if not isinstance(definition, dict):
        raise bad(str(_("segment must be an object.")), field)
    if not (set(definition) & (_NODE_KEYS | {"field", "op", "value"})):
        tree = _convert_legacy(definition, field)
    else:
        tree = _validate_node(definition, field, 0, _Budget())
    refs = _saved_refs(tree)
    if refs:
        _check_cycles(refs, segment_id, field)
    return {} if tree == {"all": []} else tree


# --- Resolution -----------------------------------------------------------------------------------------------


def _combine(parts: list, conjunction: bool, emit) -> Q:
    if not parts:  # all [] = everyone, any [] = nobody
        return Q() if conjunction else NOTHING
    q = emit(parts[0])
    for part in parts[1:]:
        q = (q & emit(part)) if conjunction else (q | emit(part))
    return q


def _emit(part: Any, ctx: Ctx, negate: bool, top: bool) -> Q:
    """A field's build result as a Q, negated or not, knowing whether it stands in the top-level AND."""
    if isinstance(part, Members):
        return part.q(negate=negate, top=top)
    if isinstance(part, Saved):
        return _build(part.definition, part.ctx, negate, top)
    if isinstance(part, (AllOf, AnyOf)):
        conjunction = isinstance(part, AllOf) != negate
        return _combine(list(part), conjunction, lambda p: _emit(p, ctx, negate, top and conjunction))
    if not negate:
        return part
    return NOTHING if part == Q() else ~part


def _build(node: dict, ctx: Ctx, negate: bool = False, top: bool = True) -> Q:
    """The Q of a node. NOT is pushed down to the conditions (De Morgan: NOT all = any of NOTs, NOT any = all of
    NOTs): PostgreSQL turns a NOT EXISTS into an anti-join only where it stands in the top-level AND, and it pulls
    sublinks up before it would push a NOT down itself. `top`: the node is in the top-level AND (see Members)."""
    if not node:
        return NOTHING if negate else Q()
    if "not" in node:
        return _build(node["not"], ctx, not negate, top)
    if "all" in node or "any" in node:
        conjunction = ("all" in node) != negate  # NOT all(...) is any(NOT ...)
        children = node.get("all", node.get("any"))
        return _combine(children, conjunction, lambda c: _build(c, ctx, negate, top and conjunction))
    return _emit(_FIELDS[node["field"]].build(node, ctx), ctx, negate, top)


def resolve(definition: dict, *, use_tag_array: bool | None = None) -> QuerySet[Contact]:
    """The contacts a (validated) definition selects, distinct, ordered by id.

    use_tag_array (default: whether the database is PostgreSQL) takes PostgreSQL's forms: tags tested on
    crm_contact.tag_ids, consent's latest version by DISTINCT ON. Tests and the bench pass False to compare with
    the portable forms SQLite runs (EXISTS over ContactTag, NOT EXISTS of a later consent version)."""
    if use_tag_array is None:
        use_tag_array = use_arrays()
    return Contact.objects.filter(_build(definition or {}, Ctx(use_tag_array))).order_by("id")


def _member_sql(part: Members) -> tuple[str, list]:
    """A positive Members set as `SELECT contact_id ...` (NULLs left out)."""
    if part.qs is not None:
        sql, params = part.qs.filter(**{f"{part.column}__isnull": False}).values(part.column).query.sql_with_params()
        return sql, list(params)
    return f"SELECT s.contact_id FROM ({part.sql}) s WHERE s.contact_id IS NOT NULL", list(part.params)  # noqa: S608 - the fields' own SQL


def _set_sql(part: Any) -> tuple[str, list] | None:
    """A field's build result as set algebra over contact ids, when it is made of sets only: Members, AnyOf
    (UNION), AllOf (INTERSECT, its negated Members EXCEPT, after at least one positive). None otherwise."""
    if isinstance(part, Members):
        return None if part.negated else _member_sql(part)
    if isinstance(part, (AllOf, AnyOf)) and part:
        positive = [p for p in part if not (isinstance(p, Members) and p.negated)]
        negative = [p for p in part if isinstance(p, Members) and p.negated]
        if not positive or (negative and isinstance(part, AnyOf)):
            return None
        compiled = [_set_sql(p) for p in positive]
        if any(c is None for c in compiled):
            return None
        sql = f" {'INTERSECT' if isinstance(part, AllOf) else 'UNION'} ".join(f"({c[0]})" for c in compiled)
        params = [v for c in compiled for v in c[1]]
        for p in negative:
            minus, minus_params = _member_sql(~p)
            sql, params = f"({sql}) EXCEPT ({minus})", [*params, *minus_params]
        return sql, params
    return None


def _single_set(definition: dict, ctx: Ctx) -> tuple[str, list] | None:
    """The definition's one condition as a set of contact ids (see _set_sql), when it is one condition (maybe
    wrapped in a one-child all/any) whose field builds sets only."""
    node = definition or {}
    while set(node) in ({"all"}, {"any"}) and len(node[next(iter(node))]) == 1:
        node = node[next(iter(node))][0]
    if "field" not in node or node["field"] == "segment":
        return None
    return _set_sql(_FIELDS[node["field"]].build(node, ctx))


def segment_count(definition: dict) -> int:
    """How many contacts the (validated) definition selects. On PostgreSQL with JIT off (its compile time, seconds
    for the large plans these make, is wasted on a count that takes a fraction of that) and room in work_mem for the
    hash tables of the semi-joins, both set for this statement only.

    A definition that is one condition over a set of contact ids (a tier, a group, spend, consent...) is counted
    on that set alone: every such set holds ids of existing contacts (each comes through a foreign key to the
    contact, or is kept by triggers from rows that have one), so the count is its distinct ids, and the 1M
    contacts are not read at all."""
    if connection.vendor != "postgresql":
        return resolve(definition).count()
    single = _single_set(definition, Ctx(True))
    with transaction.atomic(), connection.cursor() as cur:
        names = [pair[0] for pair in COUNT_SETTINGS]
        cur.execute("SELECT " + ", ".join(["current_setting(%s)"] * len(names)), names)
        before = list(zip(names, cur.fetchone(), strict=True))
        _set(cur, COUNT_SETTINGS)
        try:
            if single is None:
                return resolve(definition).count()
            cur.execute(f"SELECT count(DISTINCT u.contact_id) FROM ({single[0]}) u(contact_id)", single[1])  # noqa: S608
            return cur.fetchone()[0]
        finally:  # back as they were, for the rest of an enclosing transaction
            _set(cur, before)


def _set(cur, settings: list[tuple[str, str]]) -> None:
    cur.execute(
        "SELECT " + ", ".join(["set_config(%s, %s, true)"] * len(settings)), [v for pair in settings for v in pair]
    )


def segment_sample(definition: dict, limit: int = 10) -> list[Contact]:
    """The first `limit` members (by id): a look at who is in, for the builder."""
    return list(resolve(definition).select_related("channel")[:limit])


def preferred_staff(definition: dict) -> list[str]:
    """Userids of the `staff` conditions ANDed at the top (through nested "all"s): the campaign's preferred
    senders. A staff condition under "any" or "not" does not bind the sender."""
    found: list[str] = []

    def walk(node: dict) -> None:
        if "all" in node:
            for child in node["all"]:
                walk(child)
        elif node.get("field") == "staff":
            found.extend(node.get("value") or [])

    walk(definition or {})
    return sorted(set(found))
