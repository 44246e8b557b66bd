"""Full sync and nightly reconciliation of contacts from WeCom (batch/get_by_user, cursor paging).

A run keeps its position in SyncRun.checkpoint, written in the same transaction as the page it applied, so a run
that crashed resumes at the next page and a page is never half applied. Pages are applied in bulk (a few queries
per 100 customers) so 100k contacts take minutes. A reconciliation is the same pass plus the relations WeCom no
longer lists; every repair writes a timeline row and the run's report says what changed."""

from __future__ import annotations

import logging
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from crm.models.channels import Channel
from crm.models.contacts import Contact, ContactEvent, FollowRelation, SyncRun
from crm.models.staff import Staff
from crm.models.tags import ContactTag, Tag
from crm.services.contacts import REMADE_SLACK, follow_mark_deleted_by_staff
from crm.services.erasure import erased_external_userids
from crm.services.groups import groups_sync_all
from crm.services.staff import staff_sync
from crm.services.tags import contact_tags_mirror, follow_tags_touched, tags_lock_shared, tags_sync_from_wecom
from crm.services.timeline import from_wecom_ts
from crm.wecom.client import get_client
from crm.wecom.errors import WeComError

logger = logging.getLogger(__name__)

USERIDS_PER_CALL = 100
PAGE_LIMIT = 100
_CONTACT_FIELDS = ["name", "type", "gender", "avatar", "corp_name", "unionid"]
_FOLLOW_FIELDS = ["remark", "description", "state", "add_way", "oper_userid", "wecom_tag_ids"]
_REPAIRED_FIELDS = ("remark", "description")


def sync_start(kind: str = SyncRun.Kind.FULL, page_limit: int = PAGE_LIMIT) -> SyncRun:
    """A new run over every active staff member with customer contact (the checkpoint lists them)."""
    userids = list(
        Staff.objects.filter(status=Staff.Status.ACTIVE, has_customer_contact=True)
        .order_by("userid")
        .values_list("userid", flat=True)
    )
    return SyncRun.objects.create(
        kind=kind, checkpoint={"staff": userids, "index": 0, "cursor": "", "limit": page_limit}
    )


def _contact_values(ec: dict) -> dict:
    return {
        "name": (ec.get("name") or "")[:128],
        "type": int(ec.get("type") or Contact.Type.WECHAT),
        "gender": int(ec.get("gender") or 0),
        "avatar": (ec.get("avatar") or "")[:512],
        "corp_name": (ec.get("corp_name") or "")[:128],
        "unionid": ec.get("unionid") or "",
    }


def _follow_values(fi: dict) -> dict:
    return {
        "remark": (fi.get("remark") or "")[:64],
        "description": (fi.get("description") or "")[:256],
        "state": (fi.get("state") or "")[:64],
        "add_way": int(fi.get("add_way") or 0),
        "oper_userid": (fi.get("oper_userid") or "")[:64],
        "wecom_tag_ids": sorted(t for t in fi.get("tag_id") or [] if t),
    }


def _apply_page(run: SyncRun, items: list[dict], now: datetime) -> Counter:
    """Upsert one page of {external_contact, follow_info} in bulk; returns what changed."""
    counts: Counter = Counter()
    source = run.kind
    # An erased person is not brought back by a sync (crm.services.erasure); only a new add supersedes that.
    erased = erased_external_userids(it["external_contact"]["external_userid"] for it in items)
    if erased:
        items = [it for it in items if it["external_contact"]["external_userid"] not in erased]
        counts["erased_skipped"] += len(erased)
    contacts_data = {it["external_contact"]["external_userid"]: it["external_contact"] for it in items}
    first_added: dict[str, datetime] = {}
    for it in items:
        added = from_wecom_ts(it["follow_info"].get("createtime")) or now
        eid = it["external_contact"]["external_userid"]
        first_added[eid] = min(added, first_added.get(eid, added))
    existing = Contact.objects.in_bulk(list(contacts_data), field_name="external_userid")
    new_contacts, changed_contacts = [], []
    for eid, ec in contacts_data.items():
        values = _contact_values(ec)
        contact = existing.get(eid)
        if contact is None:
            new_contacts.append(
                Contact(external_userid=eid, synced_at=now, first_added_at=first_added[eid], **values)
            )
            continue
        if any(getattr(contact, k) != v for k, v in values.items() if k != "unionid" or v):
            for k, v in values.items():
                if k != "unionid" or v:
                    setattr(contact, k, v)
            changed_contacts.append(contact)
    Contact.objects.bulk_create(new_contacts, ignore_conflicts=True)
    # Only what changed is rewritten (a reconciliation of 100k unchanged contacts is one UPDATE per page).
    Contact.objects.bulk_update(changed_contacts, _CONTACT_FIELDS, batch_size=500)
    Contact.objects.filter(external_userid__in=list(existing)).update(synced_at=now)
    counts["contacts_created"] += len(new_contacts)
    counts["contacts_updated"] += len(changed_contacts)
    contacts = Contact.objects.in_bulk(list(contacts_data), field_name="external_userid")

    userids = {it["follow_info"]["userid"] for it in items}
    staff = {s.userid.lower(): s for s in Staff.objects.filter(userid__in=userids)}
    for userid in userids - {s.userid for s in staff.values()}:
        if userid.lower() not in staff:
            staff[userid.lower()] = Staff.objects.get_or_create(userid=userid)[0]
    follows = {
        (f.staff_id, f.contact_id): f
        for f in FollowRelation.objects.filter(contact__in=contacts.values(), staff__in=staff.values())
    }
    new_follows, changed_follows, seen_follows, events = [], [], [], []
    # contact pk -> corp tag ids an existing relation gained or lost (new relations' tags are added in bulk below)
    touched: dict[int, set[str]] = {}
    for it in items:
        fi = it["follow_info"]
        contact = contacts[it["external_contact"]["external_userid"]]
        member = staff[fi["userid"].lower()]
        values = _follow_values(fi)
        added_at = from_wecom_ts(fi.get("createtime")) or now
        follow = follows.get((member.pk, contact.pk))
        if follow is None:
            follow = FollowRelation(staff=member, contact=contact, added_at=added_at, last_seen_at=now, **values)
            follows[(member.pk, contact.pk)] = follow
            new_follows.append(follow)
            events.append(ContactEvent(contact=contact, staff=member, kind=ContactEvent.Kind.ADDED,
                                       occurred_at=added_at, data={"state": values["state"], "source": source}))
        else:
            was_active = follow.deleted_by_staff_at is None
            diff = {k: v for k, v in values.items() if getattr(follow, k) != v}
            if "wecom_tag_ids" in diff or not was_active:
                touched.setdefault(contact.pk, set()).update(
                    follow_tags_touched(follow.wecom_tag_ids, values["wecom_tag_ids"], was_active=was_active))
            remade = not was_active or (follow.added_at is not None and added_at > follow.added_at + REMADE_SLACK)
            if remade:
                # Listed again (re-added, taken over) or with a later add time (the customer came back): new relation.
                diff.update(deleted_by_staff_at=None, deleted_by_customer_at=None, added_at=added_at)
            if diff:
                for k, v in diff.items():
                    setattr(follow, k, v)
                repaired = {k: v for k, v in diff.items() if k in _REPAIRED_FIELDS or k == "deleted_by_staff_at"}
                if repaired:
                    events.append(ContactEvent(contact=contact, staff=member, kind=ContactEvent.Kind.SYNC_REPAIR,
                                               occurred_at=now, data={"source": source, "changed": sorted(repaired)}))
                counts["follows_updated"] += 1
                changed_follows.append(follow)
            seen_follows.append(follow.pk)
    FollowRelation.objects.bulk_create(new_follows, ignore_conflicts=True)
    FollowRelation.objects.bulk_update(
        changed_follows, [*_FOLLOW_FIELDS, "deleted_by_staff_at", "deleted_by_customer_at", "added_at"], batch_size=500
    )
    FollowRelation.objects.filter(pk__in=seen_follows).update(last_seen_at=now)
    counts["follows_created"] += len(new_follows)

    # Channel attribution (set once) and first-added time.
    states = {f.state for f in new_follows if f.state}
    channels = {c.state: c for c in Channel.objects.filter(state__in=states)} if states else {}
    attributed = []
    for f in new_follows:
        contact = f.contact
        if contact.channel_id is None and f.state in channels:
            contact.channel = channels[f.state]
            attributed.append(contact)
            events.append(ContactEvent(contact=contact, staff=f.staff, kind=ContactEvent.Kind.CHANNEL,
                                       occurred_at=f.added_at, data={"channel_id": contact.channel.id,
                                                                     "state": f.state, "source": source}))
    earlier = [c for c in contacts.values() if c.first_added_at is None or first_added[c.external_userid] <
               c.first_added_at]
    for contact in earlier:
        contact.first_added_at = first_added[contact.external_userid]
    Contact.objects.bulk_update({c.pk: c for c in [*attributed, *earlier]}.values(), ["first_added_at", "channel"],
                                batch_size=500)
    counts["channels_attributed"] += len(attributed)

    # A new relation's tags are the contact's too: in bulk (a first sync of 100k contacts is mostly this).
    new_tag_ids = {t for f in new_follows for t in f.wecom_tag_ids}
    if new_tag_ids:
        tags = Tag.objects.in_bulk(list(new_tag_ids), field_name="wecom_id")
        ContactTag.objects.bulk_create(
            [ContactTag(contact=f.contact, tag=tags[t], staff=f.staff) for f in new_follows for t in f.wecom_tag_ids
             if t in tags and tags[t].deleted_at is None],
            ignore_conflicts=True,
        )
    # What existing relations gained or lost, per contact (both ways: WeCom untagging is mirrored too).
    by_pk = {c.pk: c for c in contacts.values()}
    for contact_pk, tag_ids in touched.items():
        mirrored = contact_tags_mirror(by_pk[contact_pk], tag_ids)
        counts["contacts_tagged"] += mirrored["tagged"]
        counts["contacts_untagged"] += mirrored["untagged"]
    ContactEvent.objects.bulk_create(events, batch_size=1000)
    return counts


def _fetch(client, cp: dict, at: tuple[int, str]) -> dict:
    """One batch/get_by_user page at (staff index, cursor) of this checkpoint."""
    index, cursor = at
    chunk = cp["staff"][index : index + USERIDS_PER_CALL]
    return client.batch_get_by_user(chunk, cursor=cursor or None, limit=cp.get("limit", PAGE_LIMIT))


def sync_run(run_id: int, max_pages: int | None = None) -> dict:
    """Run (or resume) a sync from its checkpoint until done, or for at most `max_pages` pages; returns the
    report so far.

    The next page is fetched (in one helper thread, WeCom calls only) while this one is applied, so a run costs
    about max(fetch, apply) per page rather than their sum. The checkpoint still moves only with an applied page:
    a look-ahead that is not used (crash, stop, expired cursor) is simply fetched again."""
    client = get_client()
    run = SyncRun.objects.get(pk=run_id)
    if run.status == SyncRun.Status.FINISHED:
        return run.report
    pages = 0
    ahead: tuple[tuple[int, str], Future] | None = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-fetch") as pool:
        while max_pages is None or pages < max_pages:
            pages += 1
            cp = run.checkpoint
            at = (cp["index"], cp.get("cursor") or "")
            if not cp["staff"][at[0] : at[0] + USERIDS_PER_CALL]:
                break
            try:
                page = ahead[1].result() if ahead and ahead[0] == at else _fetch(client, cp, at)
            except WeComError as exc:
                ahead = None
                if exc.errcode == 40058 and at[1]:
                    # The cursor expired while we were down: restart this chunk (upserts are idempotent).
                    cp["cursor"] = ""
                    SyncRun.objects.filter(pk=run.pk).update(checkpoint=cp)
                    continue
                raise
            next_cursor = page.get("next_cursor") or ""
            following = (at[0], next_cursor) if next_cursor else (at[0] + USERIDS_PER_CALL, "")
            ahead = None
            if (max_pages is None or pages < max_pages) and cp["staff"][following[0] : following[0] + USERIDS_PER_CALL]:
                ahead = (following, pool.submit(_fetch, client, cp, following))
            now = timezone.now()
            items = [it for it in page.get("external_contact_list") or [] if it.get("follow_info", {}).get("userid")]
            with transaction.atomic():
                tags_lock_shared()  # before any row lock (see crm.services.tags)
                run = SyncRun.objects.select_for_update().get(pk=run.pk)
                counts = _apply_page(run, items, now)
                skipped = (page.get("fail_info") or {}).get("unlicensed_userid_list") or []
                report = Counter(run.report.get("counts", {}))
                report.update(counts)
                run.report = {**run.report, "counts": dict(report),
                              "unlicensed": sorted({*run.report.get("unlicensed", []), *skipped})}
                cp = {**run.checkpoint, "cursor": next_cursor}
                if not next_cursor:
                    cp["index"] = cp["index"] + USERIDS_PER_CALL
                run.checkpoint = cp
                run.pages += 1
                run.contacts_seen += len(items)
                run.save(update_fields=["report", "checkpoint", "pages", "contacts_seen", "updated_at"])
        else:
            return run.report  # stopped at max_pages: the checkpoint says where to resume
    return _finish(run)


def _finish(run: SyncRun) -> dict:
    """End relations WeCom no longer lists for the staff this run covered (drift), then close the run."""
    ended = 0
    stale = FollowRelation.objects.select_related("staff", "contact").filter(
        staff__userid__in=run.checkpoint["staff"], deleted_by_staff_at__isnull=True
    ).exclude(last_seen_at__gte=run.started_at)
    for follow in stale.iterator(chunk_size=500):
        with transaction.atomic():
            ended += follow_mark_deleted_by_staff(follow, reason=f"not listed by WeCom ({run.kind})")
    with transaction.atomic():
        run = SyncRun.objects.select_for_update().get(pk=run.pk)
        counts = Counter(run.report.get("counts", {}))
        counts["follows_ended"] += ended
        run.report = {**run.report, "counts": dict(counts)}
        run.status = SyncRun.Status.FINISHED
        run.finished_at = timezone.now()
        run.save(update_fields=["report", "status", "finished_at"])
    logger.info("contact sync finished", extra={"run": run.pk, "kind": run.kind, "report": run.report})
    return run.report


def full_sync() -> dict:
    """Start a full sync and run it to the end in this process (bench, management)."""
    return sync_run(sync_start(SyncRun.Kind.FULL).pk)


def syncs_resume_stalled(older_than_seconds: float = 600) -> list[int]:
    """Runs left running with no page applied for a while (their worker died): queue them to resume from their
    checkpoint."""
    from crm.tasks.contacts import sync_contacts

    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    ids = list(
        SyncRun.objects.filter(status=SyncRun.Status.RUNNING, updated_at__lte=cutoff).values_list("pk", flat=True)
    )
    for run_id in ids:
        SyncRun.objects.filter(pk=run_id).update(updated_at=timezone.now())
        sync_contacts.delay(run_id)
    return ids


def reconcile() -> dict:
    """Nightly: staff, tags, a reconciliation pass over contacts that repairs drift, groups. Returns the report."""
    report: dict = {"staff": staff_sync(), "tags": tags_sync_from_wecom()}
    run = sync_start(SyncRun.Kind.RECONCILE)
    report["contacts"] = sync_run(run.pk)
    report["groups"] = groups_sync_all()
    SyncRun.objects.filter(pk=run.pk).update(report={**run.report, **SyncRun.objects.get(pk=run.pk).report,
                                                     "staff": report["staff"], "tags": report["tags"],
                                                     "groups": report["groups"]})
    report["run"] = run.pk
    return report
