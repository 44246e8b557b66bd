"""A draw's red-packet prizes are paid once through the payout machinery and reconcile; the beat closes due draws
(close -> reveal -> winners -> fulfil -> announce); failed prizes, announcements and group-packet posts are retried
from the console's services, audited."""

from __future__ import annotations

from datetime import timedelta

import pytest
from auditlog.models import LogEntry
from django.conf import settings
from django.utils import timezone

from crm.errors import ApplicationError
from crm.models import (
    CustomerGroup,
    GroupDraw,
    GroupDrawAnnouncement,
    GroupDrawWinner,
    GroupMember,
    GroupPacketPost,
    RedPacketClaim,
    RedPacketPool,
)
from crm.services import draws as svc
from crm.services import group_packets as gp
from crm.services import redpackets as rp
from crm.services.payouts import claim_payout
from loyalty.models import Coupon, Reward
from tests.crm.campaigns.conftest import befriend, make_contact, make_staff, sim  # noqa: F401  (fixture)
from tests.crm.draws.test_draws import _draw, _group


def _entered_and_due(group, members, prizes):
    draw = svc.draw_open(_draw(group, prizes=prizes).pk)
    for contact in members:
        svc.draw_enter(draw.pk, contact.pk)
    GroupDraw.objects.filter(pk=draw.pk).update(closes_at=timezone.now())  # entries are due to close
    return draw


@pytest.mark.django_db(transaction=True)
def test_red_packet_prize_is_claimed_and_paid_once_and_reconciles(sim, monkeypatch):  # noqa: F811
    # The fulfilment is run by hand below: the one queued at reveal must not reach a session worker an earlier test
    # left running.
    from crm.tasks.draws import fulfil_draw

    monkeypatch.setattr(fulfil_draw, "delay", lambda *args, **kwargs: None)
    sim.member("drawpay")
    staff = make_staff("drawpay")
    members = [befriend(sim, staff, f"Winner {i}") for i in range(3)]
    group = _group(staff, members, chat_id="wrdrawpay")
    draw = _draw(group, prizes=[{"kind": "red_packet", "amount_fen": 888, "winners": 2}])
    # The prize's money is a pool made with the draw: a draft (nothing promised yet) of amount x winners.
    pool = RedPacketPool.objects.get(draw_prize__draw=draw)
    assert (pool.status, pool.budget_fen, pool.count, pool.mode) == ("draft", 1776, 2, "fixed")
    assert pool.claim_expiry_hours == 24 * 7  # the longest time to retry a won payout
    svc.draw_open(draw.pk)
    for contact in members:
        svc.draw_enter(draw.pk, contact.pk)
    GroupDraw.objects.filter(pk=draw.pk).update(closes_at=timezone.now())
    # Read before any claim exists: a claim's payout is queued at its commit, and a session worker may pay it
    # before this test's own payout calls below (paid once all the same).
    balance = sim.call("GET", "pay/redpacks")["merchant_balance_fen"]

    assert svc.draws_close_due()["revealed"] == [draw.pk]  # the beat's service: closed and revealed
    assert svc.draw_fulfil(draw.pk) == {"fulfilled": 2}
    assert svc.draw_fulfil(draw.pk) == {}  # once
    winners = list(GroupDrawWinner.objects.filter(draw=draw).select_related("entry"))
    for winner in winners:
        assert svc.winner_fulfil(winner.pk) == "done"
    claims = {c.contact_id: c for c in RedPacketClaim.objects.filter(pool=pool)}
    assert set(claims) == {w.entry.contact_id for w in winners}
    assert {c.amount_fen for c in claims.values()} == {888}
    assert {w.fulfilled_ref for w in winners} == {c.billno for c in claims.values()}
    # Nobody else claims from a prize's pool, whatever link they hold.
    loser = next(c for c in members if c.pk not in claims)
    assert rp.redpacket_claim(pool_id=pool.id, contact_id=loser.pk).status == "not_eligible"
    assert rp.redpacket_reconcile(pool.id)["balanced"]

    # Paid through the pay API under each claim's billno, once, however often the payout runs (and whoever runs it).
    for claim in claims.values():
        assert claim_payout(claim.id) == "paid"
        assert claim_payout(claim.id) == "paid"
    packs = [p for p in sim.call("GET", "pay/redpacks")["redpacks"] if p["mch_billno"] in {
        c.billno for c in claims.values()}]
    assert sorted(p["total_amount"] for p in packs) == [888, 888]
    assert sim.call("GET", "pay/redpacks")["merchant_balance_fen"] == balance - 1776
    report = rp.redpacket_reconcile(pool.id)
    assert report["balanced"] and report["paid_fen"] == 1776 and report["total_fen"] == report["budget_fen"]


@pytest.mark.django_db(transaction=True)
def test_fewer_entries_than_winners_refunds_the_rest_at_expiry(monkeypatch):
    # As above: neither the fulfilment queued at reveal nor the payout queued by the fulfilment's claim may reach a
    # session worker (CI found each done already: {'done': 1}, then queued_fen == 0 because the claim was paid).
    from crm.tasks.draws import fulfil_draw
    from crm.tasks.redpackets import pay_claim

    monkeypatch.setattr(fulfil_draw, "delay", lambda *args, **kwargs: None)
    monkeypatch.setattr(pay_claim, "delay", lambda *args, **kwargs: None)
    staff = make_staff()
    member = make_contact(staff)
    group = _group(staff, [member])
    draw = _entered_and_due(group, [member], [{"kind": "red_packet", "amount_fen": 500, "winners": 3}])
    svc.draw_reveal(draw.pk)
    assert svc.draw_fulfil(draw.pk) == {"fulfilled": 1}
    pool = RedPacketPool.objects.get(draw_prize__draw=draw)
    report = rp.redpacket_reconcile(pool.id)
    assert report["balanced"] and report["claimable_fen"] == 1000 and report["queued_fen"] == 500
    RedPacketPool.objects.filter(pk=pool.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert rp.redpacket_refund_expired(pool.id).amount_fen == 1000
    report = rp.redpacket_reconcile(pool.id)
    assert report["balanced"] and report["refunded_fen"] == 1000


@pytest.mark.django_db
def test_red_packet_prize_bad_input_and_approval(settings, django_user_model):
    staff = make_staff()
    group = _group(staff, [make_contact(staff)])
    for amount in (99, 20001):
        with pytest.raises(ApplicationError) as exc:
            _draw(group, prizes=[{"kind": "red_packet", "amount_fen": amount}])
        assert (exc.value.code, exc.value.field) == ("out_of_range", "prizes.0.amount_fen")
    assert not GroupDraw.objects.exists() and not RedPacketPool.objects.exists()

    settings.REDPACKET_APPROVAL_THRESHOLD_FEN = 1000
    creator = django_user_model.objects.create_user("maker", is_staff=True)
    approver = django_user_model.objects.create_superuser("boss", password="pw")
    draw = svc.draw_create(name="Big draw", group_ids=[group.pk], opens_at=timezone.now() - timedelta(minutes=1),
                           closes_at=timezone.now() + timedelta(hours=1), user=creator,
                           prizes=[{"kind": "red_packet", "amount_fen": 2000, "winners": 1}])  # fmt: skip
    with pytest.raises(ApplicationError) as exc:
        svc.draw_open(draw.pk)  # money over the threshold is not promised before a second admin approves
    assert (exc.value.code, exc.value.status_code) == ("approval_required", 409)
    rp.redpacket_pool_approve(RedPacketPool.objects.get(draw_prize__draw=draw).pk, approver=approver)
    assert svc.draw_open(draw.pk).status == "open"


@pytest.mark.django_db
def test_beat_closes_and_reveals_due_draws_and_requeues_what_was_lost():
    entry = settings.CELERY_BEAT_SCHEDULE["draws-close-due"]
    assert entry["task"] == "crm.tasks.draws.close_due_draws" and entry["schedule"] <= 60
    # A worker registers what autodiscovery imports (crm.tasks): asked in a fresh process, as a worker starts.
    import subprocess
    import sys

    code = ("import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'crm.settings'); django.setup(); "
            "from crm.celery import app; app.loader.import_default_modules(); "
            "print(sorted(t for t in app.tasks if t.startswith('crm.tasks.draws.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip().splitlines()[-1] == str(sorted(
        ["crm.tasks.draws.close_due_draws", "crm.tasks.draws.fulfil_draw", "crm.tasks.draws.send_draw_announcement"]))

    staff = make_staff()
    members = [make_contact(staff) for _ in range(3)]
    group = _group(staff, members)
    due = _entered_and_due(group, members, [{"kind": "points", "points": 10, "winners": 1}])
    later = svc.draw_open(_draw(group).pk)  # still taking entries
    draft = _draw(group)
    GroupDraw.objects.filter(pk=draft.pk).update(closes_at=timezone.now())  # never opened: not the beat's to reveal

    out = svc.draws_close_due()
    assert out["revealed"] == [due.pk]
    due.refresh_from_db()
    assert due.status == "revealed" and due.closed_at and due.winners.count() == 1
    assert GroupDrawAnnouncement.objects.filter(draw=due, kind="winners").exists()
    assert GroupDraw.objects.get(pk=later.pk).status == "open" and GroupDraw.objects.get(pk=draft.pk).status == "draft"
    assert svc.draws_close_due()["revealed"] == []  # idempotent

    # A fulfilment or an announcement whose task was lost is queued again once it is stale.
    GroupDraw.objects.filter(pk=due.pk).update(revealed_at=timezone.now() - timedelta(minutes=10))
    GroupDrawAnnouncement.objects.filter(draw=due).update(created_at=timezone.now() - timedelta(minutes=10))
    out = svc.draws_close_due()
    assert out["fulfil_requeued"] == [due.pk]
    assert sorted(out["announcements_requeued"]) == sorted(
        GroupDrawAnnouncement.objects.filter(draw=due).values_list("pk", flat=True))


@pytest.mark.django_db
def test_failed_prize_retried_once_and_audited(django_user_model):
    staff = make_staff()
    members = [make_contact(staff) for _ in range(2)]
    group = _group(staff, members)
    reward = Reward.objects.create(name="Mug", points_cost=100, stock=0)
    draw = _entered_and_due(group, members, [{"kind": "coupon", "reward_id": reward.pk, "winners": 1}])
    svc.draw_reveal(draw.pk)
    svc.draw_fulfil(draw.pk)
    winner = GroupDrawWinner.objects.get(draw=draw)
    assert winner.status == "failed" and winner.reason  # out of stock
    user = django_user_model.objects.create_superuser("marketer", password="pw")

    Reward.objects.filter(pk=reward.pk).update(stock=3)
    assert svc.winner_fulfil_retry(winner.pk, user=user) == "fulfilled"
    winner.refresh_from_db()
    assert winner.status == "fulfilled" and winner.reason == ""
    with pytest.raises(ApplicationError) as exc:
        svc.winner_fulfil_retry(winner.pk, user=user)
    assert (exc.value.code, exc.value.status_code) == ("not_failed", 409)
    assert Coupon.objects.filter(idempotency_key=winner.idempotency_key).count() == 1
    entry = LogEntry.objects.get_for_object(winner).get()
    assert entry.actor == user and entry.additional_data == {"action": "retry_prize"}
    assert entry.changes["status"] == ["failed", "pending"]


@pytest.mark.django_db(transaction=True)
def test_failed_announcement_and_group_packet_post_are_sent_again(sim, django_user_model):  # noqa: F811
    sim.member("retryowner")
    owner = make_staff("retryowner")
    chat_id = sim.call("POST", "groupchats", owner="retryowner", name="VIP retry")["chat_id"]
    group = CustomerGroup.objects.create(chat_id=chat_id, name="VIP retry", owner=owner, is_vip=True)
    user = django_user_model.objects.create_superuser("marketer", password="pw")

    draw = svc.draw_open(_draw(group).pk)
    row = GroupDrawAnnouncement.objects.get(draw=draw, kind="commitment")
    GroupDrawAnnouncement.objects.filter(pk=row.pk).update(status="failed", last_error="81013 refused")
    assert svc.announcement_retry(row.pk, user=user) == "sent"
    row.refresh_from_db()
    assert row.status == "sent" and row.msgid
    with pytest.raises(ApplicationError) as exc:
        svc.announcement_retry(row.pk, user=user)
    assert exc.value.code == "not_failed"
    assert LogEntry.objects.get_for_object(row).get().actor == user

    # A group packet whose group had no owner when it was posted: the post failed; after a handover, re-posted.
    member = make_contact(owner)
    GroupMember.objects.create(group=group, contact=member, member_id=member.external_userid,
                               joined_at=timezone.now())
    CustomerGroup.objects.filter(pk=group.pk).update(owner=None)
    pool = gp.group_packet_create(group_id=group.id, budget_fen=300, count=2)
    rp.redpacket_pool_activate(pool.id)
    assert gp.group_packet_post_send(pool.id) == "no sender"
    CustomerGroup.objects.filter(pk=group.pk).update(owner=owner)
    assert gp.group_packet_post_retry(pool.id, user=user).startswith("sent")
    post = GroupPacketPost.objects.get(pool=pool)
    assert (post.status, post.sender) == ("sent", "retryowner") and post.msgid
    with pytest.raises(ApplicationError) as exc:
        gp.group_packet_post_retry(pool.id, user=user)  # sent: never posted twice
    assert exc.value.code == "not_failed"
    entry = LogEntry.objects.get_for_object(post).get()
    assert entry.actor == user and entry.changes["sender"] == ["", "retryowner"]


@pytest.mark.django_db
def test_a_prize_pool_follows_its_prize():
    staff = make_staff()
    group = _group(staff, [make_contact(staff)])
    draw = _draw(group, prizes=[{"kind": "red_packet", "amount_fen": 300, "winners": 2}])
    pool = RedPacketPool.objects.get(draw_prize__draw=draw)
    with pytest.raises(ApplicationError) as exc:
        rp.redpacket_pool_update(pool.id, budget_fen=6000)
    assert (exc.value.code, exc.value.field, exc.value.status_code) == ("draw_prize_pool", "budget_fen", 409)
    assert rp.redpacket_pool_update(pool.id, wishing="Congratulations").wishing == "Congratulations"
    # The claim server's fast path (no per-customer check) is never taken for a prize's pool: winners only.
    from crm.services.claim_batches import pool_facts

    rp.redpacket_pool_activate(pool.id)
    assert pool_facts(pool.id).fast is False


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_beat_task_runs_the_whole_chain_on_a_real_worker(sim, celery_worker):  # noqa: F811
    """close_due_draws on the worker: reveal, then fulfil_draw and pay_claim queued on commit, each run by the
    worker; the winners' red packets are paid through the pay API once and the prize's pool balances."""
    from crm.tasks.draws import close_due_draws
    from tests.conftest import wait_for

    sim.member("beatpay")
    staff = make_staff("beatpay")
    members = [befriend(sim, staff, f"Beat {i}") for i in range(2)]
    group = _group(staff, members, chat_id="wrbeatpay")
    draw = _entered_and_due(group, members, [{"kind": "red_packet", "amount_fen": 520, "winners": 2}])
    pool = RedPacketPool.objects.get(draw_prize__draw=draw)
    close_due_draws.delay()
    wait_for(lambda: RedPacketClaim.objects.filter(pool=pool, status="paid").count() == 2, timeout=60,
             message="both prizes paid")  # fmt: skip
    assert set(GroupDrawWinner.objects.filter(draw=draw).values_list("status", flat=True)) == {"fulfilled"}
    billnos = set(RedPacketClaim.objects.filter(pool=pool).values_list("billno", flat=True))
    packs = [p for p in sim.call("GET", "pay/redpacks")["redpacks"] if p["mch_billno"] in billnos]
    assert sorted(p["total_amount"] for p in packs) == [520, 520]
    report = rp.redpacket_reconcile(pool.id)
    assert report["balanced"] and report["paid_fen"] == 1040
