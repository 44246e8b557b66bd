"""Selectors for the handover console: who can leave, what they hold, who can take over, and live progress."""

from __future__ import annotations

from collections import Counter, defaultdict

from django.db.models import Case, Count, Q, QuerySet, Value, When

from crm.errors import NotFound
from crm.models.contacts import FollowRelation
from crm.models.groups import CustomerGroup
from crm.models.staff import GroupHandoverItem, Handover, HandoverItem, Staff

PREVIEW_ROWS = 50  # customers and groups listed on the wizard's second step (the counts are exact)
PROGRESS_ROWS = 200  # transfers listed on the live page, unfinished first


def _held_follows(staff: Staff) -> QuerySet[FollowRelation]:
    """Relations neither side has deleted: the customers a handover can move (as the CRM knows them)."""
    return FollowRelation.objects.filter(
        staff=staff, deleted_by_staff_at__isnull=True, deleted_by_customer_at__isnull=True
    )


def _owned_groups(staff: Staff) -> QuerySet[CustomerGroup]:
    return CustomerGroup.objects.filter(owner=staff, status=CustomerGroup.Status.ACTIVE)


def handover_leavers() -> QuerySet[Staff]:
    """Every staff member, resigned first, with how many customers and groups they hold."""
    held = Q(follows__deleted_by_staff_at__isnull=True, follows__deleted_by_customer_at__isnull=True)
    return Staff.objects.annotate(
        customers=Count("follows", filter=held, distinct=True),
        owned_groups=Count("groups", filter=Q(groups__status=CustomerGroup.Status.ACTIVE), distinct=True),
    ).order_by("-status", "userid")  # "resigned" sorts after "active": descending puts leavers first


def handover_preview(staff: Staff, *, rows: int = PREVIEW_ROWS) -> dict:
    """The leaver's customers and groups: exact counts and the first rows of each."""
    follows = _held_follows(staff)
    groups = _owned_groups(staff).annotate(
        member_count=Count("members", filter=Q(members__left_at__isnull=True))
    )
    return {
        "customers_count": follows.count(),
        "customers": list(follows.select_related("contact").order_by("-added_at", "-id")[:rows]),
        "groups_count": groups.count(),
        "groups": list(groups.order_by("name", "id")[:rows]),
    }


def takeover_candidates(*, exclude: Staff | None = None) -> QuerySet[Staff]:
    """Active staff with customer contact, who can receive customers; with how many they already hold."""
    qs = Staff.objects.filter(status=Staff.Status.ACTIVE, has_customer_contact=True)
    if exclude is not None:
        qs = qs.exclude(pk=exclude.pk)
    held = Q(follows__deleted_by_staff_at__isnull=True, follows__deleted_by_customer_at__isnull=True)
    return qs.annotate(customers=Count("follows", filter=held, distinct=True)).order_by("userid")


def round_robin_split(total: int, takeovers: list[Staff]) -> list[tuple[Staff, int]]:
    """How many of `total` customers each takeover receives when assigned round robin in userid order
    (the order handover_plan uses)."""
    ordered = sorted(takeovers, key=lambda s: s.userid)
    if not ordered:
        return []
    base, extra = divmod(total, len(ordered))
    return [(staff, base + (1 if i < extra else 0)) for i, staff in enumerate(ordered)]


def handover_get(handover_id: int) -> Handover:
    handover = (
        Handover.objects.select_related("handover_staff").prefetch_related("takeovers").filter(pk=handover_id).first()
    )
    if handover is None:
        raise NotFound(f"Handover {handover_id} does not exist.", field="handover")
    return handover


def handover_recent(limit: int = 10) -> list[Handover]:
    return list(Handover.objects.select_related("handover_staff").order_by("-id")[:limit])


def handover_progress(handover_id: int, *, rows: int = PROGRESS_ROWS) -> dict:
    """Where every transfer stands: counts per status (customers and groups), per takeover, and the rows
    themselves, the unfinished ones first. `final` is true once the handover is finished."""
    handover = handover_get(handover_id)
    customers = dict.fromkeys(HandoverItem.Status.values, 0)
    per_takeover: dict[str, Counter] = defaultdict(Counter)
    for row in handover.items.values("takeover__userid", "status").annotate(n=Count("id")):
        customers[row["status"]] += row["n"]
        per_takeover[row["takeover__userid"]][row["status"]] += row["n"]
    groups = dict.fromkeys(GroupHandoverItem.Status.values, 0)
    for row in handover.group_items.values("status").annotate(n=Count("id")):
        groups[row["status"]] += row["n"]
    total = sum(customers.values())
    finished = sum(customers[s] for s in HandoverItem.FINAL)
    group_total = sum(groups.values())
    group_finished = group_total - groups[GroupHandoverItem.Status.PLANNED]
    is_final = Case(When(status__in=HandoverItem.FINAL, then=Value(1)), default=Value(0))
    items = list(
        handover.items.select_related("contact", "takeover").annotate(is_final=is_final).order_by("is_final", "id")[
            :rows
        ]
    )
    final = handover.status == Handover.Status.FINISHED
    steps = total + group_total
    return {
        "handover": handover,
        "final": final,
        "customers_total": total,
        "customers": customers,
        "customers_finished": finished,
        "groups_total": group_total,
        "groups": groups,
        "groups_finished": group_finished,
        # Nothing planned yet reads 0 % until the handover finishes (it may still find customers in WeCom).
        "percent": 100 if final else (100 * (finished + group_finished) // steps if steps else 0),
        "per_takeover": {userid: dict(c) for userid, c in sorted(per_takeover.items())},
        "items": items,
        "items_shown": len(items),
        "group_items": list(handover.group_items.select_related("group", "new_owner").order_by("id")[:rows]),
    }
