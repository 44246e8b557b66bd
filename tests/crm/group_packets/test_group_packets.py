"""Group lucky packets: members only, each once, the first N only, the split exact, on real Redis and PostgreSQL."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from crm.errors import ApplicationError
from crm.models import CustomerGroup, GroupMember, RedPacketClaim, RedPacketPool
from crm.services import group_packets as gp
from crm.services import redpackets as rp
from tests.crm.campaigns.conftest import later, make_contact, make_staff

pytestmark = pytest.mark.django_db(transaction=True)
_seq = itertools.count(1)


def make_group(members: int = 0, *, owner=None) -> tuple[CustomerGroup, list[int]]:
    owner = owner or make_staff()
    group = CustomerGroup.objects.create(chat_id=f"wrgp{next(_seq):06d}", name="VIP 1", owner=owner, is_vip=True)
    ids = []
    for i in range(members):
        contact = make_contact(owner, name=f"C{i}")
        join(group, contact.id, name=f"Member {i}")
        ids.append(contact.id)
    return group, ids


def join(group: CustomerGroup, contact_id: int, name: str = "") -> GroupMember:
    return GroupMember.objects.create(group=group, contact_id=contact_id, member_id=f"wm{contact_id}", name=name,
                                      joined_at=timezone.now())


def packet(group, budget=1000, count=5, **kw) -> RedPacketPool:
    pool = gp.group_packet_create(group_id=group.id, budget_fen=budget, count=count, **kw)
    return rp.redpacket_pool_activate(pool.id)


def refusal(pool_id: int, contact_id: int) -> ApplicationError:
    with pytest.raises(ApplicationError) as info:
        gp.group_packet_open(pool_id=pool_id, contact_id=contact_id)
    return info.value


def test_first_n_members_each_once_and_all_opened_sums_to_the_budget():
    group, members = make_group(7)
    pool = packet(group, budget=1000, count=5)
    opened = [gp.group_packet_open(pool_id=pool.id, contact_id=cid) for cid in members[:5]]
    assert all(o.status == "claimed" for o in opened)
    assert sum(o.amount_fen for o in opened) == 1000
    assert all(100 <= o.amount_fen <= 20000 for o in opened)
    # The sixth: all opened, a 409 with its reason code; nothing reserved for them.
    late = refusal(pool.id, members[5])
    assert (late.code, late.status_code) == ("exhausted", 409)
    assert not RedPacketClaim.objects.filter(pool=pool, contact_id=members[5]).exists()
    # A second open by someone who opened: already_claimed, with their amount.
    again = refusal(pool.id, members[0])
    assert again.code == "already_claimed" and again.details == {"amount_fen": opened[0].amount_fen}
    assert RedPacketClaim.objects.filter(pool=pool).count() == 5
    report = rp.redpacket_reconcile(pool.id)
    assert report["balanced"] and report["claimable_fen"] == 0 and report["claimed_fen"] == 1000


def test_non_members_and_members_who_left_may_not_open():
    group, members = make_group(2)
    _other_group, outsiders = make_group(1)
    stranger = make_contact(make_staff()).id
    pool = packet(group, budget=300, count=3)
    for cid in (stranger, outsiders[0]):
        exc = refusal(pool.id, cid)
        assert (exc.code, exc.status_code, exc.field) == ("not_member", 403, "pool")
    # Left the group a moment ago: membership is checked at open time.
    GroupMember.objects.filter(group=group, contact_id=members[1]).update(left_at=timezone.now())
    assert refusal(pool.id, members[1]).code == "not_member"
    # Joined a moment ago: may open.
    join(group, stranger)
    assert gp.group_packet_open(pool_id=pool.id, contact_id=stranger).status == "claimed"
    # Opened, then left: still told they opened (not not_member), and the amount stays theirs.
    GroupMember.objects.filter(group=group, contact_id=stranger).update(left_at=timezone.now())
    assert refusal(pool.id, stranger).code == "already_claimed"
    assert RedPacketClaim.objects.filter(pool=pool).count() == 1


def test_before_start_and_after_end_are_refused():
    group, members = make_group(1)
    early = packet(group, budget=200, count=2, starts_at=later(hours=1))
    assert refusal(early.id, members[0]).code == "not_started"
    ended = packet(group, budget=200, count=2)
    RedPacketPool.objects.filter(id=ended.id).update(expires_at=timezone.now() - timedelta(seconds=1))
    exc = refusal(ended.id, members[0])
    assert (exc.code, exc.status_code) == ("expired", 410)
    draft = gp.group_packet_create(group_id=group.id, budget_fen=200, count=2)
    assert refusal(draft.id, members[0]).code == "not_started"
    assert not RedPacketClaim.objects.exists()


def test_bad_input_names_the_field():
    group, _ = make_group(0)
    cases = [
        ({"group_id": 999999, "budget_fen": 500, "count": 2}, "group"),
        ({"group_id": group.id, "budget_fen": 150, "count": 2}, "budget_fen"),  # below 2 x 1 yuan
        ({"group_id": group.id, "budget_fen": 500, "count": 0}, "count"),
        ({"group_id": group.id, "budget_fen": 50000, "count": 2}, "budget_fen"),  # above 2 x 200 yuan
        ({"group_id": group.id, "budget_fen": 60000, "count": 501}, "count"),
    ]
    for kwargs, field in cases:
        with pytest.raises(ApplicationError) as info:
            gp.group_packet_create(**kwargs)
        assert info.value.field == field and info.value.status_code < 500
    assert not RedPacketPool.objects.exists()
    group.status = CustomerGroup.Status.DISMISSED
    group.save()
    with pytest.raises(ApplicationError) as info:
        gp.group_packet_create(group_id=group.id, budget_fen=500, count=2)
    assert info.value.code == "group_dismissed"


def test_default_expiry_is_a_day_and_the_unopened_rest_is_refunded_by_the_beat():
    group, members = make_group(3)
    pool = packet(group, budget=900, count=4)
    assert abs((pool.expires_at - timezone.now()) - timedelta(hours=24)) < timedelta(minutes=1)
    got = gp.group_packet_open(pool_id=pool.id, contact_id=members[0]).amount_fen
    RedPacketPool.objects.filter(id=pool.id).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert pool.id in rp.redpacket_refund_all_expired()  # what the refund beat runs
    report = rp.redpacket_reconcile(pool.id)
    assert report["refunded_fen"] == 900 - got and report["balanced"]
    board = gp.group_packet_board(pool.id)
    assert board["finished"] and board["remaining"] == 3 and board["claims"][0]["best_luck"]


def test_board_shows_who_opened_how_much_best_luck_and_what_is_left():
    group, members = make_group(4)
    pool = packet(group, budget=1200, count=3)
    gp.group_packet_open(pool_id=pool.id, contact_id=members[0])
    board = gp.group_packet_board(pool.id)
    assert (board["opened"], board["remaining"], board["finished"]) == (1, 2, False)
    assert board["claims"][0]["name"] == "Member 0"
    assert not any(c["best_luck"] for c in board["claims"])  # not settled yet
    for cid in members[1:3]:
        gp.group_packet_open(pool_id=pool.id, contact_id=cid)
    board = gp.group_packet_board(pool.id)
    amounts = [c["amount_fen"] for c in board["claims"]]
    assert board["finished"] and board["remaining"] == 0 and sum(amounts) == 1200 == board["opened_fen"]
    best = [c for c in board["claims"] if c["best_luck"]]
    assert len(best) == 1 and best[0]["amount_fen"] == max(amounts)
    assert [c["name"] for c in board["claims"]] == ["Member 0", "Member 1", "Member 2"]
    assert gp.parse_board_token(gp.board_url(pool.id).rstrip("/").rsplit("/", 1)[1]) == pool.id
    with pytest.raises(ApplicationError):
        gp.parse_board_token("forged")


def _open(pool_id: int, contact_id: int) -> str:
    try:
        return gp.group_packet_open(pool_id=pool_id, contact_id=contact_id).status
    except ApplicationError as exc:
        return exc.code
    finally:
        connection.close()


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_concurrent_opens_never_exceed_n_nor_the_budget():
    group, members = make_group(30)
    outsiders = [make_contact(make_staff()).id for _ in range(5)]
    pool = packet(group, budget=2000, count=12, max_fen=300)
    taps = members + members + outsiders  # every member taps twice, all at once, and some outsiders
    with ThreadPoolExecutor(24) as ex:
        results = list(ex.map(lambda cid: _open(pool.id, cid), taps))
    claims = list(RedPacketClaim.objects.filter(pool=pool))
    assert len(claims) == 12 and len({c.contact_id for c in claims}) == 12
    assert sum(c.amount_fen for c in claims) == 2000
    assert {c.contact_id for c in claims} <= set(members)
    assert results.count("claimed") == 12
    assert set(results) <= {"claimed", "already_claimed", "exhausted", "not_member"}
    assert results[-5:] == ["not_member"] * 5
    assert rp.redpacket_reconcile(pool.id)["balanced"]
