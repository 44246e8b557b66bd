"""Campaign runs: starting a campaign's occurrence, planning its recipients and batches, finishing it.

Planning is set-based and chunked. Each chunk is ONE transaction over the next CAMPAIGN_PLAN_CHUNK contacts (or
groups) after the run's `plan_cursor`:
  1. INSERT ... SELECT of the recipients, built from the segment's queryset (marketing consent in force), with the
     sender picked in SQL (a correlated subquery: one of the segment's staff, else the latest active follow) and
     the receive quota applied (over_quota with reachable_at); nothing of the list passes through Python;
  2. the chunk's pending recipients assigned to MassMessages per sender (row_number() over the sender), topping up
     the sender's last open batch first, never more than 10,000 (2,000 chat_ids for groups) per message;
  3. the cursor advanced.
A crash (SIGKILL, a lost connection) rolls back the chunk in progress and nothing else: planning resumes after the
last committed cursor. Planning twice creates nothing new: the run row is locked for the chunk, and recipients
and messages are UNIQUE per (run, contact) / (run, group) / (run, sender, batch_no).

Sends are queued only once the whole run is planned (status sending), so the batches being topped up are never
in a worker's hands; a send claimed meanwhile anyway (beat's resend sweeper) is seen under its row lock and the
chunk opens a new batch instead.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import connection, transaction
from django.db.models import Case, Count, F, IntegerField, Max, OuterRef, Q, QuerySet, Subquery, Value, When
from django.utils import timezone

from crm.errors import ApplicationError
from crm.models import (
    Campaign,
    CampaignGroupRecipient,
    CampaignRecipient,
    CampaignRun,
    ConsentRecord,
    Contact,
    CustomerGroup,
    FollowRelation,
    LuckyDraw,
    MassMessage,
    RedPacketPool,
    Staff,
)
from crm.services import push_quota, segments
from crm.services.consent import contacts_consenting

logger = logging.getLogger(__name__)

# WeCom: at most 10,000 external_userids per add_msg_template task (single), 2,000 chat_ids (group).
BATCH_SIZE = 10_000
GROUP_BATCH_SIZE = 2_000
DEFAULT_PLAN_CHUNK = 50_000
OPEN_RUN = (CampaignRun.Status.PLANNING, CampaignRun.Status.SENDING, CampaignRun.Status.PAUSED)
OPEN_MESSAGE = (MassMessage.Status.PENDING, MassMessage.Status.SENDING, MassMessage.Status.CREATED)
R = CampaignRecipient.Status


def plan_chunk_size() -> int:
    return max(1, int(getattr(settings, "CAMPAIGN_PLAN_CHUNK", DEFAULT_PLAN_CHUNK)))


def _get(campaign_id: int, *, lock: bool = False) -> Campaign:
    from crm.services.campaigns import _get as get_campaign

    return get_campaign(campaign_id, lock=lock)


# --- what a run sends, to whom ------------------------------------------------------------------------------


def _definition(campaign: Campaign) -> dict:
    if campaign.saved_segment_id:
        from crm.services.saved_segments import segment_definition

        # The saved segment's definition as it is now: each run plans from the segment of its moment.
        return segment_definition(campaign.saved_segment)
    return campaign.segment or {}


def _is_group_target(campaign: Campaign) -> bool:
    return campaign.target in (Campaign.Target.GROUPS, Campaign.Target.VIP_GROUPS)


def _customer_links_mode() -> str:
    return getattr(settings, "CUSTOMER_LINKS", "oauth")


def _personal(campaign: Campaign) -> tuple[RedPacketPool | None, LuckyDraw | None]:
    pool = RedPacketPool.objects.filter(campaign=campaign).first()
    return pool, LuckyDraw.objects.filter(campaign=campaign).first()


def _shared_link(kind: str, object_id: int) -> str:
    """The same link for everyone (WeChat OAuth identifies the visitor)."""
    from crm.services import customer_links

    return customer_links.pool_link(object_id) if kind == "pool" else customer_links.draw_link(object_id)


def _message_text(campaign: Campaign, pool: RedPacketPool | None, draw: LuckyDraw | None,
                  contact_id: int | None = None) -> str:
    """The text of a run's messages. With signed links (contact_id given) each carries the customer's own link."""
    lines = [campaign.text]
    if contact_id is not None:
        from crm.services.campaigns import draw_url
        from crm.services.redpackets import claim_url

        if pool is not None:
            lines.append(claim_url(pool.id, contact_id))
        if draw is not None:
            lines.append(draw_url(draw.id, contact_id))
    else:
        if pool is not None:
            lines.append(_shared_link("pool", pool.id))
        if draw is not None:
            lines.append(_shared_link("draw", draw.id))
    return "\n".join(lines)


def _audience_qs(campaign: Campaign) -> QuerySet[Contact]:
    # Only customers whose marketing consent is in force become recipients (red packets and lucky draws ride on
    # the same message); a withdrawal after planning is checked again at send time.
    return contacts_consenting(ConsentRecord.Purpose.MARKETING, segments.resolve(_definition(campaign)))


def _groups_qs(campaign: Campaign) -> QuerySet[CustomerGroup]:
    groups = CustomerGroup.objects.filter(status=CustomerGroup.Status.ACTIVE)
    if campaign.target == Campaign.Target.VIP_GROUPS:
        return groups.filter(is_vip=True)
    return groups.filter(chat_id__in=list(campaign.group_chat_ids or []))


def _sql(qs: QuerySet) -> tuple[str, list] | None:
    try:
        sql, params = qs.query.sql_with_params()
    except EmptyResultSet:
        return None
    return sql, list(params)


def _dt(value: datetime) -> object:
    return connection.ops.adapt_datetimefield_value(value)


# --- starting a run ---------------------------------------------------------------------------------------


def run_start(campaign_id: int, *, occurrence: datetime | None = None, enqueue: bool = True) -> CampaignRun | None:
    """The run for this occurrence (created once: UNIQUE (campaign, occurrence)), then its planning: queued on
    the pushes queue, or inline with enqueue=False. None when the campaign is cancelled, done or paused."""
    pool, _draw = _personal(_get(campaign_id))
    if pool is not None and pool.status == RedPacketPool.Status.DRAFT:
        from crm.services.redpackets import redpacket_pool_activate

        # Its own committed transaction first: links sent by the run must point at a live pool.
        redpacket_pool_activate(pool.id)
    with transaction.atomic():
        campaign = _get(campaign_id, lock=True)
        if campaign.status in (Campaign.Status.CANCELLED, Campaign.Status.DONE, Campaign.Status.PAUSED):
            return None
        now = timezone.now()
        if occurrence is None:
            occurrence = _default_occurrence(campaign, now)
        run, created = CampaignRun.objects.get_or_create(campaign=campaign, occurrence=occurrence)
        if campaign.status != Campaign.Status.RUNNING:
            campaign.status = Campaign.Status.RUNNING
            campaign.launched_at = campaign.launched_at or now
            campaign.save(update_fields=["status", "launched_at", "updated_at"])
        if created:
            logger.info("campaign run started", extra={"campaign_id": campaign.id, "run_id": run.id})
        if enqueue and created:
            from crm.tasks.planning import plan_run

            transaction.on_commit(lambda: plan_run.delay(run.id))
    if not enqueue and run.status == CampaignRun.Status.PLANNING:
        run_plan(run.id, enqueue=False)
        run.refresh_from_db()
    return run


def _default_occurrence(campaign: Campaign, now: datetime) -> datetime:
    """'Send now': a one-off's occurrence is its scheduled moment (so beat's own firing finds the same run), or
    its first launch; a recurring campaign's extra occurrence is now, unless one of its runs is still open."""
    if campaign.recurrence == Campaign.Recurrence.ONCE:
        existing = campaign.runs.order_by("id").values_list("occurrence", flat=True).first()
        return existing or campaign.scheduled_at or campaign.launched_at or now
    open_run = campaign.runs.filter(status__in=OPEN_RUN).order_by("-id").values_list("occurrence", flat=True).first()
    return open_run or now


def campaign_launch(campaign_id: int, *, enqueue: bool = True) -> list[int]:
    """'Send now': start the campaign's run; idempotent. The pending MassMessage ids: with enqueue=False the run
    is planned inline first (tests, demo); queued planning sends its messages itself once planned."""
    run = run_start(campaign_id, enqueue=enqueue)
    if run is None:
        return []
    return _pending_ids(run)


def _pending_ids(run: CampaignRun) -> list[int]:
    pending = MassMessage.objects.filter(run=run, status=MassMessage.Status.PENDING).order_by("id")
    return list(pending.values_list("id", flat=True))


def campaign_launch_due(now: datetime | None = None) -> list[int]:
    """Beat's 15 s sweeper: start each scheduled one-off whose time has come; their ids. The occurrence is the
    scheduled moment, the same one its ClockedSchedule PeriodicTask passes, so both firing plan one run."""
    now = now or timezone.now()
    due = list(
        Campaign.objects.filter(
            status=Campaign.Status.SCHEDULED, recurrence=Campaign.Recurrence.ONCE, scheduled_at__lte=now
        ).order_by("scheduled_at", "id").values_list("id", "scheduled_at")
    )
    started = []
    for campaign_id, scheduled_at in due:
        try:
            run = run_start(campaign_id, occurrence=scheduled_at)
        except ApplicationError as exc:  # e.g. its red-packet pool awaits approval: the others still start
            logger.warning("scheduled campaign not started: %s", exc.message,
                           extra={"campaign_id": campaign_id, "code": exc.code})  # fmt: skip
            continue
        if run is not None:
            started.append(campaign_id)
    return started


# --- planning -------------------------------------------------------------------------------------------------


def run_plan(run_id: int, *, enqueue: bool = True) -> CampaignRun:
    """Plan the whole run inline, chunk after chunk (each its own transaction)."""
    while run_plan_chunk(run_id, enqueue=enqueue):
        pass
    return CampaignRun.objects.get(id=run_id)


def run_plan_chunk(run_id: int, *, enqueue: bool = True) -> bool:
    """Plan the next chunk of the run in one transaction; True while there is more to plan.

    A paused or cancelled run (or campaign) stops here, between chunks. The last chunk moves the run to sending
    (or done when nobody is reachable) and queues its messages' sends once committed (enqueue)."""
    with transaction.atomic():
        run = CampaignRun.objects.select_for_update().filter(id=run_id).first()
        if run is None or run.status != CampaignRun.Status.PLANNING:
            return False
        campaign = Campaign.objects.get(id=run.campaign_id)
        if campaign.status in (Campaign.Status.CANCELLED, Campaign.Status.DONE):
            return False
        if connection.vendor == "postgresql":
            # The per-contact subqueries make the estimated cost huge: JIT would spend seconds compiling a query
            # that runs in less.
            with connection.cursor() as cur:
                cur.execute("SET LOCAL jit = off")
                # One chunk at a time across all runs, to this transaction's end: a chunk counts each customer's
                # quota from what is committed, so two campaigns planned at once must not both count the same last
                # slot as free. (One run's chunks are sequential anyway; only concurrent campaigns wait.)
                cur.execute("SELECT pg_advisory_xact_lock(%s)", [QUOTA_LOCK_KEY])
        group = _is_group_target(campaign)
        if run.audience is None and run.plan_cursor == 0:
            run.audience = (_groups_qs(campaign) if group else _audience_qs(campaign)).count()
        size = plan_chunk_size()
        staged, last_key = _stage_chunk(campaign, run, run.plan_cursor, size, group)
        if staged:
            run.planned += _assign_batches(campaign, run, group)
            run.plan_cursor = last_key
        _drop_stage()
        more = staged >= size
        fields = ["plan_cursor", "planned", "audience"]
        if not more:
            _finish_planning(run, enqueue=enqueue)
            fields += ["status", "planned_at", "finished_at", "stats"]
        run.save(update_fields=fields)
    if not more and run.status == CampaignRun.Status.DONE:
        campaign_finish_if_complete(run.campaign_id)
    return more


QUOTA_LOCK_KEY = 0x51A0_7A  # pg_advisory_xact_lock key of planning's quota count (any constant of the app's own)

# The chunk being planned, staged in a temporary table (per connection, no WAL on PostgreSQL): its recipients are
# then written to the recipients table once, each with its message, instead of inserted and updated again.
STAGE = "crm_plan_stage"


def _drop_stage() -> None:
    with connection.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {STAGE}")


def _chunk_query(campaign: Campaign, run: CampaignRun, cursor: int, size: int, group: bool) -> QuerySet:
    """The next `size` contacts (or groups) after `cursor`, as (id, address, sender, received in the period)."""
    if group:
        moment = run.occurrence
        owner_ok = Q(owner__status=Staff.Status.ACTIVE, owner__has_customer_contact=True)
        return (
            _groups_qs(campaign).filter(id__gt=cursor)
            .annotate(
                plan_addr=F("chat_id"),
                plan_sender=Case(When(owner_ok, then="owner_id"), default=Value(None), output_field=IntegerField()),
                plan_got=push_quota.group_received(moment),
            )
            .order_by("id").values_list("id", "plan_addr", "plan_sender", "plan_got")[:size]
        )
    moment = run.started_at
    staff = Staff.objects.filter(status=Staff.Status.ACTIVE, has_customer_contact=True)
    preferred = segments.preferred_staff(_definition(campaign))
    if preferred:
        staff = staff.filter(userid__in=preferred)
    # The senders as constants (a tiny table): the subquery is then an index probe of the contact's follows.
    sender_ids = list(staff.values_list("id", flat=True))
    follows = FollowRelation.objects.filter(
        contact_id=OuterRef("pk"), staff_id__in=sender_ids, deleted_by_staff_at__isnull=True
    )
    picked = (
        Subquery(follows.order_by("-added_at", "-id").values("staff_id")[:1], output_field=IntegerField())
        if sender_ids else Value(None, output_field=IntegerField())
    )
    return (
        _audience_qs(campaign).filter(id__gt=cursor)
        .annotate(plan_addr=F("external_userid"), plan_sender=picked, plan_got=push_quota.received(moment))
        .order_by("id").values_list("id", "plan_addr", "plan_sender", "plan_got")[:size]
    )


def _stage_chunk(campaign: Campaign, run: CampaignRun, cursor: int, size: int, group: bool) -> tuple[int, int]:
    """Stage the chunk (INSERT ... SELECT into the temporary table): each row's status (no_sender, over_quota,
    pending) and, for pending rows, its rank among its sender's (row_number()). (rows, last id)."""
    _drop_stage()
    compiled = _sql(_chunk_query(campaign, run, cursor, size, group))
    if compiled is None:
        return 0, cursor
    inner, params = compiled
    limit = push_quota.window(run.occurrence if group else run.started_at).limit
    # Table names are constants; the inner SELECT is the ORM's, with its params.
    sql = f"""
        CREATE TEMPORARY TABLE {STAGE} AS
        SELECT s.k, s.addr, s.sender_id, s.status,
            CASE WHEN s.status = %s THEN row_number() OVER (PARTITION BY s.status, s.sender_id ORDER BY s.k) END
                AS rn
        FROM (
            SELECT q.id AS k, q.plan_addr AS addr, CAST(q.plan_sender AS BIGINT) AS sender_id,
                CASE WHEN q.plan_sender IS NULL THEN %s WHEN q.plan_got >= %s THEN %s ELSE %s END AS status
            FROM ({inner}) q
        ) s
    """  # noqa: S608
    with connection.cursor() as cur:
        cur.execute(sql, [R.PENDING, R.NO_SENDER, limit, R.OVER_QUOTA, R.PENDING, *params])
        cur.execute(f"SELECT count(*), max(k) FROM {STAGE}")  # noqa: S608
        rows, last = cur.fetchone()
    return int(rows or 0), int(last or cursor)


def _assign_batches(campaign: Campaign, run: CampaignRun, group: bool) -> int:
    """Write the staged chunk: MassMessages per sender (the sender's last pending batch topped up first, then new
    ones, never more than the limit), then every recipient with its message in one INSERT ... SELECT, the n-th
    pending recipient of a sender going to batch base + (n - room) / limit. How many rows were written."""
    with connection.cursor() as cur:
        cur.execute(f"SELECT sender_id, count(*) FROM {STAGE} WHERE status = %s GROUP BY sender_id",  # noqa: S608
                    [R.PENDING])
        counts = dict(cur.fetchall())
    pool, draw = _personal(campaign)
    signed = not group and (pool is not None or draw is not None) and _customer_links_mode() == "signed"
    limit = 1 if signed else GROUP_BATCH_SIZE if group else BATCH_SIZE
    plan = _plan_messages(campaign, run, counts, limit, group, pool, draw, signed)
    values = ", ".join(f"({int(s)}, {int(b)}, {int(r)})" for s, b, r in plan) or "(0, 0, 0)"
    now = _dt(timezone.now())
    if group:
        table, columns = CampaignGroupRecipient._meta.db_table, "group_id, chat_id"
        extra_cols, extra_vals, extra_params = "", "", []
    else:
        table, columns = CampaignRecipient._meta.db_table, "contact_id, external_userid"
        extra_cols = ", reachable_at, quota_day"
        extra_vals = ", CASE WHEN s.status = %s THEN %s END, CASE WHEN s.status = %s THEN %s END"
        window = push_quota.window(run.started_at)
        extra_params = [R.OVER_QUOTA, _dt(window.reachable_at), R.PENDING,
                        connection.ops.adapt_datefield_value(push_quota.local_day(run.started_at))]
    # Table names from model meta; the numbers formatted by int().
    sql = f"""
        WITH p(sender_id, base, room) AS (VALUES {values})
        INSERT INTO {table}
            (campaign_id, run_id, {columns}, sender_id, mass_message_id, status, reason, sent_at, updated_at
             {extra_cols})
        SELECT %s, %s, s.k, s.addr, s.sender_id, m.id, s.status, '', NULL, %s {extra_vals}
        FROM {STAGE} s
        LEFT JOIN p ON p.sender_id = s.sender_id AND s.rn IS NOT NULL
        LEFT JOIN {MassMessage._meta.db_table} m ON m.run_id = %s AND m.sender_id = s.sender_id
            AND m.batch_no = p.base + CASE WHEN s.rn <= p.room THEN 0 ELSE 1 + (s.rn - p.room - 1) / %s END
        WHERE 1 = 1
        ON CONFLICT DO NOTHING
    """  # noqa: S608
    with connection.cursor() as cur:
        cur.execute(sql, [campaign.id, run.id, now, *extra_params, run.id, limit])
        if connection.vendor == "sqlite":  # Python's sqlite3 counts no rows for a statement opening with WITH
            cur.execute("SELECT changes()")
            return int(cur.fetchone()[0])
        return max(cur.rowcount, 0)


def _plan_messages(campaign, run, counts: dict[int, int], limit: int, group: bool, pool, draw,
                   signed: bool) -> list[tuple[int, int, int]]:
    """Create the chunk's MassMessages; per sender (sender, last batch_no before the chunk, room left in it)."""
    if not counts:
        return []
    last = dict(
        MassMessage.objects.filter(run=run, sender_id__in=list(counts)).order_by().values("sender_id")
        .annotate(b=Max("batch_no")).values_list("sender_id", "b")
    )
    # The sender's last batch is topped up while it is still pending (locked: a send claiming it meanwhile
    # waits for this chunk, and one that claimed it first makes this chunk open a new batch).
    open_rows = {} if signed else {
        m.sender_id: m
        for m in MassMessage.objects.select_for_update().filter(
            run=run, status=MassMessage.Status.PENDING, recipients_count__lt=limit,
            sender_id__in=list(last), batch_no__in=list(set(last.values())),
        )
        if last.get(m.sender_id) == m.batch_no
    }
    chat_type = "group" if group else "single"
    text = _message_text(campaign, pool, draw)
    contacts: dict[tuple[int, int], int] = {}
    if signed:
        # CUSTOMER_LINKS = "signed" (the fallback): a signed link names the customer and one add_msg_template
        # carries one content, so each recipient gets a task of their own (one confirmation each).
        with connection.cursor() as cur:
            cur.execute(f"SELECT sender_id, rn, k FROM {STAGE} WHERE status = %s", [R.PENDING])  # noqa: S608
            contacts = {(s, int(rn)): k for s, rn, k in cur.fetchall()}
    plan: list[tuple[int, int, int]] = []
    new: list[MassMessage] = []
    for sender_id, n in sorted(counts.items()):
        base = last.get(sender_id, 0)
        top_up = open_rows.get(sender_id)
        room = min(n, limit - top_up.recipients_count) if top_up else 0
        plan.append((sender_id, base, room))
        if room:
            MassMessage.objects.filter(id=top_up.id).update(recipients_count=top_up.recipients_count + room)
        rest = n - room
        for i in range(math.ceil(rest / limit)):
            batch_no = base + 1 + i
            new.append(MassMessage(
                campaign=campaign, run=run, chat_type=chat_type, sender_id=sender_id, batch_no=batch_no,
                idempotency_key=f"c{campaign.id}-r{run.id}-s{sender_id}-b{batch_no}",
                text=_message_text(campaign, pool, draw, contacts[(sender_id, i + 1)]) if signed else text,
                recipients_count=min(limit, rest - i * limit),
            ))
    MassMessage.objects.bulk_create(new, batch_size=1000)
    return plan


def _stats(run: CampaignRun) -> dict[str, int]:
    stats: dict[str, int] = {}
    for table in (CampaignRecipient, CampaignGroupRecipient):
        for status, n in table.objects.filter(run=run).order_by().values("status").annotate(n=Count("*")).values_list(
            "status", "n"
        ):
            stats[status] = stats.get(status, 0) + n
    return stats


def _finish_planning(run: CampaignRun, *, enqueue: bool) -> None:
    """The run is planned: sending (its sends queued once committed), or done when nothing is to be sent."""
    now = timezone.now()
    run.planned_at = now
    run.stats = _stats(run)
    pending = _pending_ids(run)
    if MassMessage.objects.filter(run=run, status__in=OPEN_MESSAGE).exists():
        run.status = CampaignRun.Status.SENDING
    else:
        run.status = CampaignRun.Status.DONE  # nobody reachable: nothing to send
        run.finished_at = now
    logger.info("campaign run planned", extra={"run_id": run.id, "planned": run.planned, "messages": len(pending)})
    if enqueue and pending:
        from crm.tasks.campaigns import send_mass_message

        transaction.on_commit(lambda: [send_mass_message.delay(mid) for mid in pending])


# --- finishing ---------------------------------------------------------------------------------------------


def _close_run_if_complete(run: CampaignRun) -> bool:
    """(run locked) A sending run with no message waiting to be sent or confirmed becomes done."""
    if run.status != CampaignRun.Status.SENDING:
        return run.status == CampaignRun.Status.DONE
    if MassMessage.objects.filter(run=run, status__in=OPEN_MESSAGE).exists():
        return False
    run.status = CampaignRun.Status.DONE
    run.finished_at = timezone.now()
    run.stats = _stats(run)
    run.save(update_fields=["status", "finished_at", "stats"])
    return True


def run_finish_if_complete(run_id: int) -> bool:
    """Mark a sending run done once none of its messages is waiting; then its campaign, if that was the last."""
    with transaction.atomic():
        run = CampaignRun.objects.select_for_update().filter(id=run_id).first()
        if run is None:
            return False
        done = _close_run_if_complete(run)
    if done:
        campaign_finish_if_complete(run.campaign_id)
    return done


def campaign_finish_if_complete(campaign_id: int) -> bool:
    """Close the campaign's complete runs; a running one-off with no open run or message is done, a recurring
    campaign goes back to scheduled between runs (done after recur_until). True when the campaign is done."""
    with transaction.atomic():
        campaign = _get(campaign_id, lock=True)
        for run in CampaignRun.objects.select_for_update().filter(campaign=campaign, status=CampaignRun.Status.SENDING):
            _close_run_if_complete(run)
        if campaign.status != Campaign.Status.RUNNING:
            return campaign.status == Campaign.Status.DONE
        if MassMessage.objects.filter(campaign=campaign, run__isnull=True, status__in=OPEN_MESSAGE).exists():
            return False  # messages from before runs existed
        if campaign.runs.filter(status__in=OPEN_RUN).exists():
            return False
        now = timezone.now()
        if campaign.recurrence != Campaign.Recurrence.ONCE and (campaign.recur_until is None
                                                                  or campaign.recur_until > now):
            campaign.status = Campaign.Status.SCHEDULED  # waiting for its next occurrence
            campaign.save(update_fields=["status", "updated_at"])
            return False
        campaign.status = Campaign.Status.DONE
        campaign.finished_at = now
        campaign.save(update_fields=["status", "finished_at", "updated_at"])
        return True
