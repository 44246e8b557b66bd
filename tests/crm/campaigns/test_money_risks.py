"""The red-packet money risks of issue 13, each closed: a Redis rebuild racing an uncommitted claim (over budget by one
packet), reservations a refund stranded, checked against the reconciliation."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from crm.models import RedPacketClaim, RedPacketPool
from crm.services import redpackets as rp
from tests.crm.campaigns.conftest import later, make_contact, make_staff

pytestmark = pytest.mark.django_db(transaction=True)


def _pool(budget: int, count: int, **kw) -> RedPacketPool:
    pool = rp.redpacket_pool_create(campaign_id=None, budget_fen=budget, count=count, mode="lucky",
                                    expires_at=later(hours=1), **kw)  # fmt: skip
    return rp.redpacket_pool_activate(pool.id)


def _in_thread(fn):
    def run(*args):
        try:
            return fn(*args)
        finally:
            connection.close()

    return run


class _PausingRedis:
    """The real client, except that the claim's check of its own reservation (hget on the claimed hash) for one
    contact pauses after it answers: the claim's transaction is then open, its row written and not committed."""

    def __init__(self, real, contact_id: int, checked: threading.Event, go: threading.Event) -> None:
        self._real, self._contact, self._checked, self._go = real, str(contact_id), checked, go

    def hget(self, key, field):
        value = self._real.hget(key, field)
        if field == self._contact and key.endswith(":claimed") and not self._checked.is_set():
            self._checked.set()
            self._go.wait(10)
        return value

    def __getattr__(self, name):
        return getattr(self._real, name)


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="row locks: PostgreSQL (SQLite has one writer)")
def test_a_rebuild_during_an_uncommitted_claim_never_pays_over_budget(monkeypatch):
    staff = make_staff()
    first, *others = [make_contact(staff).id for _ in range(6)]
    pool = _pool(budget=1500, count=5, max_fen=400)
    real = rp.get_redis()
    checked, go = threading.Event(), threading.Event()
    monkeypatch.setattr(rp, "get_redis", lambda: _PausingRedis(real, first, checked, go))

    with ThreadPoolExecutor(2) as ex:
        claiming = ex.submit(_in_thread(lambda: rp.redpacket_claim(pool_id=pool.id, contact_id=first)))
        assert checked.wait(10)
        # An operator's "rebuild Redis state" (or a lost Redis) while that claim is not committed yet.
        rebuilding = ex.submit(_in_thread(lambda: rp.redpacket_state_ensure(pool.id, force=True)))
        rebuilding_done_early = _wait(rebuilding, 1.5)  # with the fix it waits for the claim's transaction
        go.set()
        outcome, _ = claiming.result(15), rebuilding.result(15)
    assert outcome.status == "claimed"

    # Everyone else taps: the pool pays out exactly its budget, never a packet more.
    outcomes = [rp.redpacket_claim(pool_id=pool.id, contact_id=cid) for cid in others]
    claims = RedPacketClaim.objects.filter(pool=pool)
    assert claims.count() == 5 and sum(c.amount_fen for c in claims) == 1500
    assert sorted(c.amount_fen for c in claims) == sorted(RedPacketPool.objects.get(id=pool.id).amounts)
    assert [o.status for o in outcomes].count("none_left") == 1
    report = rp.redpacket_reconcile(pool.id)
    assert report["balanced"] and report["claimable_fen"] == 0 and report["in_flight_fen"] == 0
    assert not rebuilding_done_early  # it waited for the claim's transaction


def _wait(future, seconds: float) -> bool:
    try:
        future.result(seconds)
        return True
    except FutureTimeout:
        return False


def test_a_refund_takes_back_reservations_whose_claim_never_wrote_its_row():
    staff = make_staff()
    dead, late, *_ = [make_contact(staff).id for _ in range(3)]
    pool = _pool(budget=1000, count=5, max_fen=300)
    keys = rp.pool_keys(pool.id)
    # A claim process reserved an amount in Redis and died before writing its row (the customer saw nothing).
    code, stranded = rp._script("claim")(keys=keys, args=[str(dead)])
    assert code == 1
    assert rp.redpacket_reconcile(pool.id)["in_flight_fen"] == stranded
    # Another customer claims normally.
    paid = rp.redpacket_claim(pool_id=pool.id, contact_id=late)
    assert paid.status == "claimed"

    RedPacketPool.objects.filter(id=pool.id).update(expires_at=timezone.now())
    refund = rp.redpacket_refund_expired(pool.id)
    # Refunded: what was left and the stranded reservation; only the written claim is owed.
    assert refund.amount_fen == 1000 - paid.amount_fen
    assert refund.packets == 4 and refund.reserved == {str(dead): stranded}
    report = rp.redpacket_reconcile(pool.id)
    assert report["in_flight_fen"] == 0 and report["refunded_fen"] == 1000 - paid.amount_fen
    assert report["balanced"], report
    # The dead claim's customer opens the page again: the pool is over, nothing is written or paid.
    assert rp.redpacket_claim(pool_id=pool.id, contact_id=dead).status == "expired"
    assert not RedPacketClaim.objects.filter(pool=pool, contact_id=dead).exists()
    # A rebuild of the refunded pool's Redis state changes none of it.
    rp.redpacket_state_ensure(pool.id, force=True)
    assert rp.redpacket_reconcile(pool.id)["balanced"]


def test_a_claim_waiting_while_the_pool_is_refunded_gets_nothing():
    """A claim whose reservation was made before the close and whose row comes after the refund: refused."""
    staff = make_staff()
    cid = make_contact(staff).id
    pool = _pool(budget=500, count=2, max_fen=400)
    code, amount = rp._script("claim")(keys=rp.pool_keys(pool.id), args=[str(cid)])
    assert code == 1
    RedPacketPool.objects.filter(id=pool.id).update(expires_at=timezone.now())
    refund = rp.redpacket_refund_expired(pool.id)
    assert refund.amount_fen == 500
    pool.refresh_from_db()
    with pytest.raises(rp.PoolClosed):
        rp._persist_claim(pool, cid, amount)
    assert not RedPacketClaim.objects.filter(pool=pool).exists()
    assert rp.redpacket_reconcile(pool.id)["balanced"]


def test_the_scheduled_reconciliation_alerts_by_log_health_and_console_banner(client, django_user_model, caplog):
    from crm.tasks.redpackets import reconcile_pools

    staff = make_staff()
    pool = _pool(budget=1000, count=4, max_fen=400)
    other = _pool(budget=600, count=2, max_fen=400)
    assert rp.redpacket_claim(pool_id=pool.id, contact_id=make_contact(staff).id).status == "claimed"
    admin = django_user_model.objects.create_superuser("boss", "boss@example.com", "pw")
    client.force_login(admin)

    assert reconcile_pools.apply().get() == {"checked": 2, "unbalanced": []}
    assert client.get("/healthz/money").status_code == 200
    assert b"data-money-alert" not in client.get("/admin/").content

    # Money goes missing from the live state: an amount vanishes from the claimable list.
    rp.get_redis().lpop(rp.pool_keys(pool.id)[0])
    with caplog.at_level("ERROR", logger="crm.services.redpackets"):
        assert reconcile_pools.apply().get() == {"checked": 2, "unbalanced": [pool.id]}
    errors = [r for r in caplog.records if r.levelname == "ERROR" and getattr(r, "pool_id", None) == pool.id]
    assert errors and errors[0].difference_fen < 0
    health = client.get("/healthz/money")
    assert health.status_code == 503
    money = health.json()["checks"]["money"]
    assert [u["pool_id"] for u in money["unbalanced"]] == [pool.id] and money["unbalanced"][0]["difference_fen"] < 0
    page = client.get("/admin/").content.decode()
    assert page.count("data-money-alert") == 1 and f"/admin/console/pools/{pool.id}/" in page
    # Someone who may not see pools gets no banner.
    clerk = django_user_model.objects.create_user("clerk", password="pw", is_staff=True)
    client.force_login(clerk)
    assert "data-money-alert" not in client.get("/admin/").content.decode()

    # Fixed (the live state rebuilt from the database): the next check balances and the alerts clear.
    rp.redpacket_state_ensure(pool.id, force=True)
    assert reconcile_pools.apply().get() == {"checked": 2, "unbalanced": []}
    assert client.get("/healthz/money").status_code == 200
    assert RedPacketPool.objects.get(id=other.id).reconcile_balanced is True


def test_a_live_pool_left_unreconciled_turns_the_money_health_check_red(client, settings):
    pool = _pool(budget=500, count=1)
    assert client.get("/healthz/money").status_code == 200  # just activated: not due yet
    RedPacketPool.objects.filter(id=pool.id).update(activated_at=timezone.now() - timedelta(hours=1))
    health = client.get("/healthz/money")
    assert health.status_code == 503 and health.json()["checks"]["money"]["unwatched"] == [pool.id]
    rp.redpacket_reconcile_record(pool.id)
    assert client.get("/healthz/money").status_code == 200
