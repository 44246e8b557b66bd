"""Staff handover (继承): a resigned or moving staff member's customers and groups, assigned to takeovers and
tracked to WeCom's final result. Every step is resumable: items are planned as rows first (unique per handover
and customer), submitted in batches of 100 and only then marked, so a worker dying half way loses nothing — the
re-run submits what is still planned, and a batch WeCom already accepted answers "being transferred" (waiting)."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from datetime import timedelta
from itertools import cycle

from django.db import transaction
from django.utils import timezone

from crm.errors import ApplicationError, NotFound
from crm.models.contacts import Contact, ContactEvent, FollowRelation
from crm.models.groups import CustomerGroup
from crm.models.staff import GroupHandoverItem, Handover, HandoverItem, Staff
from crm.services.contacts import contact_refresh
from crm.services.erasure import erased_external_userids
from crm.services.groups import group_sync
from crm.services.timeline import from_wecom_ts, timeline_add
from crm.wecom.client import get_client
from crm.wecom.errors import WeComError

logger = logging.getLogger(__name__)

BATCH = 100  # customers per transfer call, groups per group-transfer call
# Per-item errcodes that mean "this customer is already in a transfer": a batch re-sent after a crash.
ALREADY_TRANSFERRING = frozenset({40129, 40100})
# Group-transfer errcodes that mean the group already has its new owner (a re-run after a crash).
GROUP_ALREADY_DONE = frozenset({90504, 90508})
# user/get errcodes for a member who is no longer in the corp.
MEMBER_GONE = frozenset({60111, 60123, 46004})
STILL_ACTIVE = ("A resigned handover needs a resigned staff member: %s is still active in WeCom. "
                "Use an on-the-job transfer.")
_RESULT_STATUS = {
    1: HandoverItem.Status.DONE,
    2: HandoverItem.Status.WAITING,
    3: HandoverItem.Status.REFUSED,
    4: HandoverItem.Status.LIMIT,
}


def handover_validate(
    *, kind: str, handover_userid: str, takeover_userids: list[str], transfer_message: str = ""
) -> tuple[Staff, list[Staff]]:
    """The checks handover_create makes, writing nothing (the console validates its form with them)."""
    if kind not in Handover.Kind.values:
        raise ApplicationError(f"kind must be one of {Handover.Kind.values}", field="kind")
    handover_staff = Staff.objects.filter(userid__iexact=handover_userid).first()
    if handover_staff is None:
        raise ApplicationError(f"Unknown staff {handover_userid}", field="handover_userid")
    if kind == Handover.Kind.RESIGNED and handover_staff.is_active:
        raise ApplicationError(STILL_ACTIVE % handover_staff.userid, field="handover_userid", code="still_active")
    if kind == Handover.Kind.ON_THE_JOB and not handover_staff.is_active:
        raise ApplicationError("This staff member has resigned: use a resigned handover.", field="kind")
    if not takeover_userids:
        raise ApplicationError("Give at least one takeover.", field="takeover_userids")
    takeovers = list(Staff.objects.filter(userid__in=takeover_userids))
    missing = sorted(set(takeover_userids) - {s.userid for s in takeovers})
    if missing:
        raise ApplicationError(f"Unknown takeover staff: {', '.join(missing)}", field="takeover_userids")
    bad = sorted(s.userid for s in takeovers if not (s.is_active and s.has_customer_contact) or s == handover_staff)
    if bad:
        raise ApplicationError(f"Cannot take over: {', '.join(bad)}", field="takeover_userids")
    if len(transfer_message) > 200:
        raise ApplicationError("At most 200 characters.", field="transfer_message")
    return handover_staff, takeovers


def _active_in_wecom(userid: str) -> bool:
    """Whether WeCom still has this member on the job. A resigned member is gone from user/get (60111); a resigned
    transfer of someone still there finds no "unassigned" customer and would finish having moved nothing."""
    try:
        member = get_client().user_get(userid)
    except WeComError as exc:
        if exc.errcode in MEMBER_GONE:
            return False
        raise
    return int(member.get("status") or 1) != 5  # 5: left the company (WeCom's status codes)


def _refuse_if_still_active(handover: Handover) -> None:
    if handover.kind == Handover.Kind.RESIGNED and _active_in_wecom(handover.handover_staff.userid):
        raise ApplicationError(STILL_ACTIVE % handover.handover_staff.userid, field="kind", code="still_active")


def handover_create(
    *,
    kind: str,
    handover_userid: str,
    takeover_userids: list[str],
    transfer_message: str = "",
    include_groups: bool = True,
    created_by: str = "",
) -> Handover:
    """A handover to one or several takeovers (assigned round robin). Validated here; planned by a task."""
    handover_staff, takeovers = handover_validate(kind=kind, handover_userid=handover_userid,
                                                  takeover_userids=takeover_userids, transfer_message=transfer_message)
    with transaction.atomic():
        handover = Handover.objects.create(
            kind=kind,
            handover_staff=handover_staff,
            transfer_message=transfer_message,
            include_groups=include_groups,
            created_by=created_by,
        )
        handover.takeovers.set(takeovers)
    return handover


def handover_start(handover_id: int) -> str:
    """Mark the handover started and queue planning and submission in the background (admin action, API).
    A started handover whose worker died is picked up again by `handovers_resume_stalled`."""
    from crm.tasks.contacts import handover_run

    # Ask WeCom before taking the row lock: no transaction is held across a WeCom call (on SQLite the simulator
    # writes the same file, and a lock held across its answer deadlocks).
    first = Handover.objects.select_related("handover_staff").filter(pk=handover_id).first()
    if first is not None and first.status == Handover.Status.PLANNED:
        _refuse_if_still_active(first)
    with transaction.atomic():
        # of=self: the row only; a joined row locked FOR UPDATE also blocks every insert that points at it.
        handover = (Handover.objects.select_for_update(of=("self",)).select_related("handover_staff")
                    .filter(pk=handover_id).first())
        if handover is None:
            raise NotFound(f"Handover {handover_id} does not exist.")
        if handover.status == Handover.Status.FINISHED:
            raise ApplicationError("This handover is finished.", field="handover_id", code="finished")
        if handover.status == Handover.Status.PLANNED:
            handover.status = Handover.Status.SUBMITTING
            handover.save(update_fields=["status", "updated_at"])
        transaction.on_commit(lambda: handover_run.delay(handover_id))
    return "queued"


def handovers_resume_stalled(older_than_seconds: float = 600) -> list[int]:
    """Started handovers with no progress for a while (their worker died): queue them again. Safe because every
    step is idempotent (planned rows are unique, a re-sent batch answers "already transferring")."""
    from crm.tasks.contacts import handover_run

    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    ids = list(
        Handover.objects.filter(status=Handover.Status.SUBMITTING, updated_at__lte=cutoff).values_list("pk", flat=True)
    )
    for handover_id in ids:
        Handover.objects.filter(pk=handover_id).update(updated_at=timezone.now())
        handover_run.delay(handover_id)
    return ids


def _get(handover_id: int) -> Handover:
    handover = Handover.objects.select_related("handover_staff").filter(pk=handover_id).first()
    if handover is None:
        raise NotFound(f"Handover {handover_id} does not exist.")
    return handover


def _customers_to_move(handover: Handover) -> list[str]:
    client = get_client()
    userid = handover.handover_staff.userid
    if handover.kind == Handover.Kind.RESIGNED:
        eids = {row["external_userid"] for row in client.iter_unassigned_list() if
                row.get("handover_userid", "").lower() == userid.lower()}
    else:
        try:
            eids = set(client.externalcontact_list(userid).get("external_userid") or [])
        except WeComError as exc:
            if exc.errcode != 84061:  # a member without customers
                raise
            eids = set()
    return sorted(eids)


def _groups_to_move(handover: Handover) -> list[str]:
    userid = handover.handover_staff.userid
    rows = get_client().iter_groupchat_list(status_filter=0, owner_filter={"userid_list": [userid]})
    return sorted({row["chat_id"] for row in rows})


def handover_plan(handover_id: int) -> dict:
    """Read what the staff member has in WeCom and write one item per customer and group, round robin over the
    takeovers. Idempotent: re-planning keeps existing items (and their takeover) and adds only new ones."""
    handover = _get(handover_id)
    _refuse_if_still_active(handover)  # never "finished" with nothing moved
    eids = _customers_to_move(handover)
    chat_ids = _groups_to_move(handover) if handover.include_groups else []
    for chat_id in chat_ids:
        if not CustomerGroup.objects.filter(chat_id=chat_id).exists():
            group_sync(chat_id)
    takeovers = list(handover.takeovers.order_by("userid"))
    with transaction.atomic():
        handover = Handover.objects.select_for_update().get(pk=handover.pk)
        done_eids = set(handover.items.values_list("external_userid", flat=True))
        per_takeover = Counter(handover.items.values_list("takeover_id", flat=True))
        robin = cycle(takeovers)
        for _ in range(len(done_eids) % len(takeovers)):
            next(robin)
        new_items = []
        erased = erased_external_userids(eids)  # erased people are not ours to hand over any more
        for eid in eids:
            if eid in done_eids or eid in erased:
                continue
            contact, _ = Contact.objects.get_or_create(external_userid=eid)  # the company keeps every customer
            takeover = next(robin)
            new_items.append(
                HandoverItem(
                    handover=handover, contact=contact, external_userid=eid, takeover=takeover,
                    batch_no=per_takeover[takeover.pk] // BATCH,
                )
            )
            per_takeover[takeover.pk] += 1
        HandoverItem.objects.bulk_create(new_items, ignore_conflicts=True)
        groups = CustomerGroup.objects.filter(chat_id__in=chat_ids).order_by("chat_id")
        have = set(handover.group_items.values_list("group_id", flat=True))
        robin = cycle(takeovers)
        GroupHandoverItem.objects.bulk_create(
            [GroupHandoverItem(handover=handover, group=g, new_owner=next(robin)) for g in groups if g.pk not in have],
            ignore_conflicts=True,
        )
        handover.status = Handover.Status.SUBMITTING if handover.status == Handover.Status.PLANNED else handover.status
        handover.save(update_fields=["status", "updated_at"])  # progress mark for the stall sweeper
    return {"customers": len(eids), "groups": len(chat_ids)}


def _submit_batch(handover: Handover, takeover: Staff, items: list[HandoverItem]) -> None:
    client = get_client()
    eids = [i.external_userid for i in items]
    if handover.kind == Handover.Kind.RESIGNED:
        result = client.resigned_transfer_customer(handover.handover_staff.userid, takeover.userid, eids)
    else:
        message = handover.transfer_message or None
        result = client.transfer_customer(handover.handover_staff.userid, takeover.userid, eids, message)
    codes = {row["external_userid"]: int(row.get("errcode") or 0) for row in result.get("customer") or []}
    now = timezone.now()
    with transaction.atomic():
        for item in items:
            code = codes.get(item.external_userid, 0)
            waiting = code == 0 or code in ALREADY_TRANSFERRING
            item.status = HandoverItem.Status.WAITING if waiting else HandoverItem.Status.FAILED
            item.errcode = code or None
            item.submitted_at = now
            item.finished_at = None if waiting else now
            item.save(update_fields=["status", "errcode", "submitted_at", "finished_at"])
            timeline_add(
                item.contact, ContactEvent.Kind.TRANSFER, staff=takeover,
                data={"handover": handover.pk, "from": handover.handover_staff.userid, "status": item.status,
                      "errcode": code},
            )


def _submit_groups(handover: Handover) -> None:
    client = get_client()
    by_owner: dict[int, list[GroupHandoverItem]] = defaultdict(list)
    for item in handover.group_items.select_related("group", "new_owner").filter(
        status=GroupHandoverItem.Status.PLANNED
    ):
        by_owner[item.new_owner_id].append(item)
    for items in by_owner.values():
        for start in range(0, len(items), BATCH):
            chunk = items[start : start + BATCH]
            owner = chunk[0].new_owner.userid
            chat_ids = [i.group.chat_id for i in chunk]
            if handover.kind == Handover.Kind.RESIGNED:
                result = client.groupchat_transfer(chat_ids, owner)
            else:
                result = client.groupchat_onjob_transfer(chat_ids, owner)
            failed = {row["chat_id"]: row for row in result.get("failed_chat_list") or []}
            now = timezone.now()
            with transaction.atomic():
                for item in chunk:
                    row = failed.get(item.group.chat_id)
                    code = int(row.get("errcode") or 0) if row else 0
                    ok = row is None or code in GROUP_ALREADY_DONE
                    item.status = GroupHandoverItem.Status.DONE if ok else GroupHandoverItem.Status.FAILED
                    item.errcode = code or None
                    item.errmsg = (row or {}).get("errmsg", "")[:256]
                    item.finished_at = now
                    item.save(update_fields=["status", "errcode", "errmsg", "finished_at"])
            for item in chunk:
                if item.status == GroupHandoverItem.Status.DONE:
                    group_sync(item.group.chat_id)


def handover_submit(handover_id: int) -> dict:
    """Send every still-planned item to WeCom, 100 per call per takeover; then the groups."""
    handover = _get(handover_id)
    sent = 0
    for takeover in handover.takeovers.all():
        while True:
            batch = list(
                handover.items.select_related("contact")
                .filter(takeover=takeover, status=HandoverItem.Status.PLANNED)
                .order_by("id")[:BATCH]
            )
            if not batch:
                break
            _submit_batch(handover, takeover, batch)
            Handover.objects.filter(pk=handover.pk).update(updated_at=timezone.now())  # progress mark
            sent += len(batch)
    if handover.include_groups:
        _submit_groups(handover)
    Handover.objects.filter(pk=handover.pk, status__in=[Handover.Status.PLANNED, Handover.Status.SUBMITTING]).update(
        status=Handover.Status.WAITING
    )
    _finish_if_done(handover.pk)
    return {"submitted": sent}


def handover_run(handover_id: int) -> dict:
    """Plan then submit (the task body; safe to run again after a crash)."""
    planned = handover_plan(handover_id)
    return {**planned, **handover_submit(handover_id)}


def _copy_notes(item: HandoverItem, handover: Handover) -> None:
    """The takeover's relation inherits the handover's remark and description (in WeCom too, best effort)."""
    old = FollowRelation.objects.filter(staff=handover.handover_staff, contact=item.contact).first()
    new = FollowRelation.objects.filter(staff=item.takeover, contact=item.contact).first()
    if old is None or new is None or not (old.remark or old.description):
        return
    if not new.remark and not new.description:
        new.remark, new.description = old.remark, old.description
        new.save(update_fields=["remark", "description", "updated_at"])
        try:
            get_client().remark(item.takeover.userid, item.external_userid, remark=old.remark,
                                description=old.description)
        except WeComError as exc:
            logger.warning("remark copy failed", extra={"errcode": exc.errcode, "item": item.pk})


def handover_poll(handover_id: int) -> dict:
    """Read transfer_result for every takeover with waiting items and move items to their final status."""
    handover = _get(handover_id)
    client = get_client()
    counts: Counter = Counter()
    for takeover in handover.takeovers.all():
        waiting = {i.external_userid: i for i in handover.items.select_related("contact", "takeover").filter(
            takeover=takeover, status=HandoverItem.Status.WAITING)}
        if not waiting:
            continue
        if handover.kind == Handover.Kind.RESIGNED:
            rows = client.iter_resigned_transfer_result(handover.handover_staff.userid, takeover.userid)
        else:
            rows = client.iter_transfer_result(handover.handover_staff.userid, takeover.userid)
        for row in rows:
            item = waiting.get(row.get("external_userid"))
            if item is None:
                continue
            status = _RESULT_STATUS.get(int(row.get("status") or 0), HandoverItem.Status.FAILED)
            item.takeover_time = from_wecom_ts(row.get("takeover_time")) or item.takeover_time
            if status == HandoverItem.Status.WAITING:
                item.save(update_fields=["takeover_time"])
                counts["waiting"] += 1
                continue
            if status == HandoverItem.Status.DONE:
                contact_refresh(item.external_userid, source="handover")  # the takeover's relation appears
                _copy_notes(item, handover)
            with transaction.atomic():
                item.status = status
                item.finished_at = timezone.now()
                item.save(update_fields=["status", "finished_at", "takeover_time"])
                timeline_add(item.contact, ContactEvent.Kind.TRANSFER, staff=takeover,
                             data={"handover": handover.pk, "status": status})
            counts[status] += 1
    _finish_if_done(handover.pk)
    return dict(counts)


def _finish_if_done(handover_id: int) -> None:
    open_items = HandoverItem.objects.filter(handover_id=handover_id).exclude(status__in=HandoverItem.FINAL).exists()
    open_groups = GroupHandoverItem.objects.filter(
        handover_id=handover_id, status=GroupHandoverItem.Status.PLANNED
    ).exists()
    if not open_items and not open_groups:
        Handover.objects.filter(pk=handover_id, status=Handover.Status.WAITING).update(
            status=Handover.Status.FINISHED, finished_at=timezone.now()
        )


def handover_report(handover_id: int) -> dict:
    """Counts per status, per takeover, and the groups: what an admin reads to know nothing was lost."""
    handover = _get(handover_id)
    per_takeover: dict[str, Counter] = defaultdict(Counter)
    for userid, status in handover.items.values_list("takeover__userid", "status"):
        per_takeover[userid][status] += 1
    return {
        "handover": handover.pk,
        "kind": handover.kind,
        "from": handover.handover_staff.userid,
        "status": handover.status,
        "customers": dict(Counter(handover.items.values_list("status", flat=True))),
        "per_takeover": {k: dict(v) for k, v in per_takeover.items()},
        "groups": dict(Counter(handover.group_items.values_list("status", flat=True))),
        "failed": list(handover.items.filter(status=HandoverItem.Status.FAILED).values("external_userid", "errcode")),
    }


def handover_on_transfer_fail(*, takeover_userid: str, external_userid: str, reason: str) -> str:
    """transfer_fail names the takeover, not the handover: re-read the results of the handovers waiting on it."""
    ids = set(
        HandoverItem.objects.filter(
            takeover__userid__iexact=takeover_userid,
            external_userid=external_userid,
            status=HandoverItem.Status.WAITING,
        ).values_list("handover_id", flat=True)
    )
    for handover_id in ids:
        handover_poll(handover_id)
    return f"transfer_fail {reason}: {len(ids)} handover(s) re-read"


def handovers_poll_open() -> dict:
    """Poll every handover still waiting (beat)."""
    return {h: handover_poll(h) for h in Handover.objects.filter(status=Handover.Status.WAITING).values_list(
        "pk", flat=True)}


def handover_check_results(handover_id: int) -> str:
    """Read WeCom's transfer results now instead of at beat's next poll (console button): queued for a worker,
    which polls every waiting handover."""
    from crm.tasks.contacts import poll_handovers

    handover = _get(handover_id)
    if handover.status == Handover.Status.FINISHED:
        raise ApplicationError("This handover is finished: every transfer has its result.", field="handover_id",
                               code="finished")
    if handover.status != Handover.Status.WAITING:
        raise ApplicationError("This handover is still being submitted to WeCom; check its results once it waits "
                               "for them.", field="handover_id", code="not_waiting")
    transaction.on_commit(poll_handovers.delay)
    return "queued"
