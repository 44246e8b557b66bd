"""Mass messages at scale: 10,000 recipients in one add_msg_template (fail_list exact, a few queries), the receive
quota (month_days / week7 / day1, counted per shopper in China time) applied in bulk at confirmation, send results
paged in the database with a stable cursor, and admin/deliveries, the exactly-once count."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from wecom_sim.bulk import seed_contacts
from wecom_sim.corp import get_corp
from wecom_sim.driver import SimAdminError
from wecom_sim.models import SimFriendship, SimInboxMessage, SimMassMessage, SimMassTask, SimShopper

UTC = dt.UTC


def _seed(staff: int, contacts: int) -> list[str]:
    """-> the external_userids, in id order (each followed by one member)."""
    seed_contacts(get_corp(), staff=staff, contacts=contacts, seed=11, shared_rate=0.0, states=0, tags=0)
    return list(SimShopper.objects.order_by("id").values_list("external_userid", flat=True))


def _send(wx, eids, content="Double 12", **extra) -> dict:
    return wx.post("externalcontact/add_msg_template",
                   {"chat_type": "single", "external_userid": eids, "text": {"content": content}, **extra})


def _all_results(wx, msgid: str, userid: str, limit: int = 1000) -> list[dict]:
    rows, cursor = [], ""
    while True:
        page = wx.post("externalcontact/get_groupmsg_send_result",
                       {"msgid": msgid, "userid": userid, "limit": limit, "cursor": cursor})
        assert page["errcode"] == 0, page
        rows += page["send_list"]
        cursor = page["next_cursor"]
        if not cursor:
            return rows


def test_ten_thousand_recipients_in_one_call_with_exact_fail_list(sim, wx):
    sim.configure(confirm_delay_seconds=None)
    eids = _seed(staff=4, contacts=10_000)
    gone = [eids[10], eids[5000], eids[9000]]  # the member deleted the customer: not sendable
    SimFriendship.objects.filter(shopper__external_userid__in=gone).update(member_deleted=True)
    asked = [*eids[:9998], "wmunknown1", "wmunknown2"]
    created = _send(wx, asked)
    assert created["errcode"] == 0, created
    assert created["fail_list"] == [*gone, "wmunknown1", "wmunknown2"]  # in the order asked
    message = SimMassMessage.objects.get(msgid=created["msgid"])
    assert message.results.count() == 9998 - 3
    tasks = wx.post("externalcontact/get_groupmsg_task", {"msgid": created["msgid"], "limit": 1000})["task_list"]
    assert sorted(t["userid"] for t in tasks) == ["staff000", "staff001", "staff002", "staff003"]
    assert {t["status"] for t in tasks} == {0}

    too_many = _send(wx, [*eids, "wmone-more"])
    assert too_many["errcode"] == 40058 and too_many["msgid"] == ""


def test_add_msg_template_and_confirmation_are_set_based(sim):
    """The handler itself, queries counted: a few per call whatever the size (one per recipient would be 10,000)."""
    from wecom_sim import clockwork
    from wecom_sim.cgi.mass import add_msg_template

    eids = _seed(staff=4, contacts=10_000)
    corp = get_corp()
    corp.confirm_delay_seconds = None
    corp.save()
    with CaptureQueriesContext(connection) as created_queries:
        created = add_msg_template(corp, {"external_userid": eids, "text": {"content": "bulk"}})
    # Batched inserts: SQLite binds at most 999 parameters a statement, so its batches are smaller.
    bound = 20 if connection.vendor == "postgresql" else 100
    assert created["fail_list"] == [] and len(created_queries) <= bound, len(created_queries)
    task = SimMassTask.objects.select_related("message").filter(message__msgid=created["msgid"]).first()
    with CaptureQueriesContext(connection) as confirm_queries:
        assert clockwork.confirm_task(corp, task) == 1
    assert len(confirm_queries) <= 12, len(confirm_queries)
    mine = task.message.results.filter(userid=task.userid)
    assert mine.count() > 2000 and mine.filter(status=1).count() == mine.count()
    assert SimInboxMessage.objects.filter(ref=created["msgid"], from_userid=task.userid).count() == mine.count()
    assert task.message.results.exclude(userid=task.userid).filter(status=0).count() == 10_000 - mine.count()


def test_a_read_of_a_message_waits_for_its_confirmation_in_progress(sim, wx):
    """The backlog sweep skips a task another process is confirming (SKIP LOCKED); a read of that message waits for
    the confirmation to commit, so it shows every recipient sent rather than all still unsent a moment before."""
    import threading
    import time

    from django.db import transaction

    from wecom_sim import clockwork

    if connection.vendor != "postgresql":
        pytest.skip("row locks: PostgreSQL")
    sim.configure(confirm_delay_seconds=None)
    eids = _seed(staff=1, contacts=50)
    created = _send(wx, eids)
    task = SimMassTask.objects.select_related("message").get(message__msgid=created["msgid"])
    corp = get_corp()
    locked = threading.Event()

    def confirming_elsewhere():
        try:
            with transaction.atomic():
                SimMassTask.objects.select_for_update().get(pk=task.pk)
                locked.set()
                time.sleep(1.0)
                clockwork.confirm_task(corp, task)
        finally:
            connection.close()

    other = threading.Thread(target=confirming_elsewhere)
    other.start()
    assert locked.wait(10)
    corp.confirm_delay_seconds = 0.0  # due now, for the read below
    started = time.monotonic()
    clockwork.confirm_due(corp, task.message)  # what a read of the message runs first
    waited = time.monotonic() - started
    statuses = set(task.message.results.values_list("status", flat=True))
    other.join(10)
    assert waited > 0.5 and statuses == {1}
    assert SimInboxMessage.objects.filter(ref=created["msgid"]).count() == 50  # confirmed once


# --- the receive quota at confirmation ---------------------------------------------------------------------------

CHINA = dt.timezone(dt.timedelta(hours=8))
# Friday 2026-12-04 01:00 in China = Thursday 2026-12-03 17:00 UTC: China's day, week and month differ from UTC's.
NOW = dt.datetime(2026, 12, 4, 1, 0, tzinfo=CHINA)


def _at_china(sim) -> None:
    sim.advance(NOW.timestamp() - sim.clock())


def _received(eid: str, *moments: dt.datetime) -> None:
    shopper = SimShopper.objects.get(external_userid=eid)
    SimInboxMessage.objects.bulk_create(SimInboxMessage(shopper=shopper, kind="mass", from_userid="staff000",
                                                        text="earlier", received_at=m) for m in moments)


@pytest.mark.parametrize(("quota", "history", "expected"), [
    # day1: one today (China) blocks; one late yesterday in China (the same UTC day as now) does not.
    ("day1", {"full": [dt.datetime(2026, 12, 3, 16, 30, tzinfo=UTC)],
              "free": [dt.datetime(2026, 12, 3, 15, 30, tzinfo=UTC)]}, {"full": 3, "free": 1}),
    # week7: the week starts Monday 00:00 China time (Sunday 16:00 UTC).
    ("week7", {"full": [dt.datetime(2026, 11, 29, 16, 30, tzinfo=UTC)] * 7,
               "free": [dt.datetime(2026, 11, 30, 3, 0, tzinfo=UTC)] * 6
               + [dt.datetime(2026, 11, 29, 15, 30, tzinfo=UTC)] * 3}, {"full": 3, "free": 1}),
    # month_days: December has 31; its first China day starts 2026-11-30 16:00 UTC.
    ("month_days", {"full": [dt.datetime(2026, 11, 30, 16, 30, tzinfo=UTC)] * 31,
                    "free": [dt.datetime(2026, 12, 2, 0, 0, tzinfo=UTC)] * 30
                    + [dt.datetime(2026, 11, 30, 15, 30, tzinfo=UTC)] * 5}, {"full": 3, "free": 1}),
])
def test_receive_quota_in_china_time_at_confirmation(sim, wx, quota, history, expected):
    sim.configure(confirm_delay_seconds=None, receive_quota=quota)
    _at_china(sim)
    eids = _seed(staff=1, contacts=2000)
    who = {"full": eids[0], "free": eids[1], "one_way": eids[2]}
    for name, moments in history.items():
        _received(who[name], *moments)
    sim.delete_staff(who["one_way"], "staff000")  # the customer deleted the member: status 2
    msgid = _send(wx, eids)["msgid"]
    assert {r["status"] for r in _all_results(wx, msgid, "staff000")} == {0}  # nothing before the sender taps send
    assert sim.confirm_groupmsg(msgid)["confirmed"] == 1
    assert sim.confirm_groupmsg(msgid)["confirmed"] == 0  # a task is confirmed once
    results = {r["external_userid"]: r for r in _all_results(wx, msgid, "staff000")}
    assert len(results) == 2000
    assert results[who["full"]]["status"] == expected["full"] and "send_time" not in results[who["full"]]
    assert results[who["free"]]["status"] == expected["free"]
    assert results[who["one_way"]]["status"] == 2
    sent = [r for r in results.values() if r["status"] == 1]
    assert len(sent) == 2000 - 2 and all(abs(r["send_time"] - NOW.timestamp()) < 120 for r in sent)
    assert sim.deliveries(ref=msgid) == {"delivered": 1998, "shoppers": 1998, "duplicates": 0}
    assert [m["text"] for m in sim.inbox(who["full"])] == ["earlier"] * len(history["full"])


def test_quota_within_one_day_across_messages(sim, wx):
    """day1: the first message reaches everyone, the second (same day, China time) no one, the next day all."""
    sim.configure(confirm_delay_seconds=None, receive_quota="day1")
    _at_china(sim)
    eids = _seed(staff=2, contacts=3000)
    first, second = _send(wx, eids, "first")["msgid"], _send(wx, eids, "second")["msgid"]
    sim.confirm_groupmsg(first)
    sim.confirm_groupmsg(second)
    for userid in ("staff000", "staff001"):
        assert {r["status"] for r in _all_results(wx, first, userid)} == {1}
        assert {r["status"] for r in _all_results(wx, second, userid)} == {3}
    sim.advance(86400)
    third = _send(wx, eids, "third")["msgid"]
    sim.confirm_groupmsg(third)
    assert sim.deliveries(ref=third)["delivered"] == 3000


# --- paging ------------------------------------------------------------------------------------------------------


def test_send_results_paged_with_a_stable_cursor(sim, wx):
    sim.configure(confirm_delay_seconds=None)
    eids = _seed(staff=1, contacts=2500)
    msgid = _send(wx, eids)["msgid"]
    body = {"msgid": msgid, "userid": "staff000", "limit": 1000}
    first = wx.post("externalcontact/get_groupmsg_send_result", body)
    assert len(first["send_list"]) == 1000 and first["next_cursor"]
    assert {r["status"] for r in first["send_list"]} == {0}
    # The sender confirms between two pages: the cursor (the last row's id) still leads to the next rows.
    sim.confirm_groupmsg(msgid)
    second = wx.post("externalcontact/get_groupmsg_send_result", {**body, "cursor": first["next_cursor"]})
    third = wx.post("externalcontact/get_groupmsg_send_result", {**body, "cursor": second["next_cursor"]})
    assert len(second["send_list"]) == 1000 and len(third["send_list"]) == 500 and third["next_cursor"] == ""
    assert {r["status"] for r in second["send_list"] + third["send_list"]} == {1}
    seen = [r["external_userid"] for r in first["send_list"] + second["send_list"] + third["send_list"]]
    assert seen == eids  # every recipient once, in order
    again = wx.post("externalcontact/get_groupmsg_send_result", {**body, "cursor": first["next_cursor"]})
    assert again["send_list"] == second["send_list"] and again["next_cursor"] == second["next_cursor"]
    # Userids are case-insensitive; the cursor is bound to its query; the limit is clamped to 1,000.
    upper = wx.post("externalcontact/get_groupmsg_send_result", {**body, "userid": "STAFF000"})
    assert len(upper["send_list"]) == 1000
    other = wx.post("externalcontact/get_groupmsg_send_result",
                    {**body, "userid": "staff001", "cursor": first["next_cursor"]})
    assert other["errcode"] == 40058 and other["send_list"] == []
    assert len(wx.post("externalcontact/get_groupmsg_send_result", {**body, "limit": 5000})["send_list"]) == 1000
    tampered = wx.post("externalcontact/get_groupmsg_send_result", {**body, "cursor": "bm90LWEtY3Vyc29y"})
    assert tampered["errcode"] == 40058


# --- admin/deliveries --------------------------------------------------------------------------------------------


def test_deliveries_counts_and_duplicates(sim, wx):
    sim.configure(confirm_delay_seconds=None, receive_quota="month_days")
    eids = _seed(staff=2, contacts=300)
    first = _send(wx, eids[:200], "Flash sale 12.12")["msgid"]
    sim.confirm_groupmsg(first)
    sim.advance(60)
    resent_at = sim.clock()
    again = _send(wx, eids[150:250], "Flash sale 12.12")["msgid"]  # 50 shoppers get the same content twice
    other = _send(wx, eids[:10], "Another text")["msgid"]
    sim.confirm_groupmsg(again)
    sim.confirm_groupmsg(other)
    assert sim.deliveries(ref=first) == {"delivered": 200, "shoppers": 200, "duplicates": 0}
    assert sim.deliveries(ref=[first, again]) == {"delivered": 300, "shoppers": 250, "duplicates": 50}
    assert sim.deliveries(text="Flash sale") == {"delivered": 300, "shoppers": 250, "duplicates": 50}
    assert sim.deliveries(text="Flash sale", since=resent_at) == {"delivered": 100, "shoppers": 100,
                                                                 "duplicates": 0}
    assert sim.deliveries() == {"delivered": 310, "shoppers": 250, "duplicates": 50}  # other text: no duplicate
    assert sim.deliveries(ref="msgnone") == {"delivered": 0, "shoppers": 0, "duplicates": 0}
    assert sim.deliveries(kind="welcome")["delivered"] == 0
    with pytest.raises(SimAdminError) as bad:
        sim.deliveries(since="yesterday")
    assert bad.value.status == 400 and bad.value.body["error"]["field"] == "since"
    with pytest.raises(SimAdminError) as bad_kind:
        sim.deliveries(kind="sms")
    assert bad_kind.value.status == 400 and bad_kind.value.body["error"]["field"] == "kind"


def test_rate_limit_applies_to_mass_endpoints(sim, wx):
    """WeCom's per-API limit (10,000/min; lowered here) answers 45009 on these endpoints too."""
    sim.configure(confirm_delay_seconds=None, rate_limit_per_minute=3)
    eids = _seed(staff=1, contacts=5)
    codes = [_send(wx, eids)["errcode"] for _ in range(4)]
    assert codes == [0, 0, 0, 45009]
    msgid = SimMassMessage.objects.order_by("id").first().msgid
    body = {"msgid": msgid, "userid": "staff000"}
    pages = [wx.post("externalcontact/get_groupmsg_send_result", body) for _ in range(4)]
    assert [p["errcode"] for p in pages] == [0, 0, 0, 45009] and pages[-1]["send_list"] == []
