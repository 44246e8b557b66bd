"""Skip-verify adds: add_half_external_contact first, add_external_contact when the member confirms (at once, after a
delay or through the admin API), 84061 until then, one welcome opportunity per add; 41096 while a welcome is in
flight. Over real HTTP with the independent receiver."""

import threading
import time

import pytest

from tests.conftest import wait_for
from wecom_sim.driver import SimAdminError


@pytest.fixture
def half_world(sim, wx):
    sim.add_member("alice")
    sim.add_member("bob")
    # skip_verify defaults to true, as in WeCom
    wx.post("externalcontact/add_contact_way", {"type": 1, "scene": 2, "user": ["alice"], "state": "half-1"})
    wx.post("externalcontact/add_contact_way", {"type": 1, "scene": 2, "user": ["bob"], "state": "bob-1",
                                                "skip_verify": False})
    return sim


def _contact_events(receiver, eid):
    return [e for e in receiver.events if e.get("ExternalUserID") == eid]


def test_default_member_confirms_at_once(half_world, wx, receiver):
    sim = half_world
    eid = sim.add_shopper("王芳")["external_userid"]
    added = sim.scan_contact_way(eid, state="half-1")
    assert added["confirmed"] is True and added["welcome_code"]
    wait_for(lambda: len(_contact_events(receiver, eid)) == 2, 10, message="half add then add")
    half, full = _contact_events(receiver, eid)
    assert half["ChangeType"] == "add_half_external_contact" and full["ChangeType"] == "add_external_contact"
    assert half["State"] == full["State"] == "half-1" and half["UserID"] == full["UserID"] == "alice"
    assert half["WelcomeCode"] == added["welcome_code"]
    assert "WelcomeCode" not in full  # the half-add code is still valid: one welcome opportunity per add
    assert wx.get("externalcontact/get", external_userid=eid)["follow_user"][0]["state"] == "half-1"
    # skip_verify false: a plain add_external_contact with its own code
    other = sim.add_shopper("李强")["external_userid"]
    plain = sim.scan_contact_way(other, state="bob-1")
    wait_for(lambda: _contact_events(receiver, other), 10, message="plain add")
    sim.drain(10)
    assert [(e["ChangeType"], e["WelcomeCode"]) for e in _contact_events(receiver, other)] == [
        ("add_external_contact", plain["welcome_code"])]


def test_delayed_confirmation_84061_until_then_and_welcome_with_half_code(half_world, wx, receiver):
    sim = half_world
    sim.configure(add_confirm_seconds=60)
    eid = sim.add_shopper("王芳")["external_userid"]
    # already bob's customer: get lists bob only while alice has not confirmed
    sim.scan_contact_way(eid, state="bob-1")
    added = sim.scan_contact_way(eid, state="half-1")
    assert added["confirmed"] is False
    got = wx.get("externalcontact/get", external_userid=eid)
    assert [f["userid"] for f in got["follow_user"]] == ["bob"]
    assert wx.get("externalcontact/list", userid="alice")["external_userid"] == []
    assert wx.post("externalcontact/remark", {"userid": "alice", "external_userid": eid, "remark": "x"})[
        "errcode"] == 84061
    tag = wx.post("externalcontact/add_corp_tag", {"group_name": "G", "tag": [{"name": "T"}]})["tag_group"]["tag"][0]
    assert wx.post("externalcontact/mark_tag", {"userid": "alice", "external_userid": eid,
                                                "add_tag": [tag["id"]]})["errcode"] == 84061
    # a customer with only a half relation: 84061, with the empty result keys
    lone = sim.add_shopper("李强")["external_userid"]
    lone_added = sim.scan_contact_way(lone, state="half-1")
    missing = wx.get("externalcontact/get", external_userid=lone)
    assert missing["errcode"] == 84061 and missing["follow_user"] == [] and missing["external_contact"] == {}
    # scanning again while waiting changes nothing
    assert sim.scan_contact_way(eid, state="half-1")["welcome_code"] is None
    # the welcome may go out with the half-add code ...
    assert wx.post("externalcontact/send_welcome_msg", {"welcome_code": added["welcome_code"],
                                                        "text": {"content": "hi"}})["errcode"] == 0
    assert [m["kind"] for m in sim.inbox(eid)] == ["welcome"]
    sim.advance(61)  # the member confirms both adds
    wait_for(lambda: len([e for e in receiver.of("add_external_contact") if e["UserID"] == "alice"]) == 2, 10,
             message="confirmations")
    confirmed = {e["ExternalUserID"]: e for e in receiver.of("add_external_contact") if e["UserID"] == "alice"}
    # ... then no second code; the other half code expired unused, so its confirmation carries a fresh one
    assert "WelcomeCode" not in confirmed[eid] and confirmed[eid]["State"] == "half-1"
    fresh = confirmed[lone]["WelcomeCode"]
    assert fresh and fresh != lone_added["welcome_code"]
    assert wx.post("externalcontact/send_welcome_msg", {"welcome_code": fresh, "text": {"content": "hi"}})[
        "errcode"] == 0
    assert sorted(f["userid"] for f in wx.get("externalcontact/get", external_userid=eid)["follow_user"]) == [
        "alice", "bob"]
    assert wx.get("externalcontact/list", userid="alice")["external_userid"] == [eid, lone]
    halves = [e["ExternalUserID"] for e in receiver.of("add_half_external_contact")]
    assert sorted(halves) == sorted([eid, lone])


def test_confirm_add_through_the_admin_api(half_world, wx, receiver):
    sim = half_world
    sim.configure(add_confirm_seconds=None)  # members never confirm by themselves
    eid = sim.add_shopper("王芳")["external_userid"]
    sim.scan_contact_way(eid, state="half-1")
    sim.advance(3600)
    assert wx.get("externalcontact/get", external_userid=eid)["errcode"] == 84061
    result = sim.member_confirm_add("alice", eid)
    assert result["welcome_code"]  # the half code expired long ago
    assert wx.get("externalcontact/get", external_userid=eid)["follow_user"][0]["userid"] == "alice"
    with pytest.raises(SimAdminError) as err:
        sim.member_confirm_add("alice", eid)
    assert err.value.status == 409 and err.value.body["error"]["code"] == "not_pending"
    wait_for(lambda: [e for e in receiver.of("add_external_contact") if e["ExternalUserID"] == eid], 10,
             message="add_external_contact")
    event = next(e for e in receiver.of("add_external_contact") if e["ExternalUserID"] == eid)
    assert event["WelcomeCode"] == result["welcome_code"]


def test_welcome_being_distributed_41096(sim, wx, world):
    sim.configure(welcome_send_delay_ms=1500)
    code = world["added"]["welcome_code"]
    body = {"welcome_code": code, "text": {"content": "欢迎"}}
    first: dict = {}
    sender = threading.Thread(target=lambda: first.update(wx.post("externalcontact/send_welcome_msg", body)))
    sender.start()
    time.sleep(0.5)
    second = wx.post("externalcontact/send_welcome_msg", body)
    sender.join(10)
    assert second["errcode"] == 41096 and "welcome msg is being distributed" in second["errmsg"]
    assert first["errcode"] == 0
    sim.configure(welcome_send_delay_ms=0)
    assert wx.post("externalcontact/send_welcome_msg", body)["errcode"] == 41051  # delivered: final
    assert len(sim.inbox(world["eid"])) == 1


def test_crm_welcomes_a_half_add_while_the_customer_follows_another_member(half_world, receiver, settings):
    """The CRM applies the simulator's real half-add event: WeCom does not list the pair yet (the customer is
    bob's, alice has not confirmed), and the welcome still goes out with the half-add code."""
    from crm.models.contacts import ContactEvent, FollowRelation, WelcomeMessage
    from crm.services import callback_routing

    settings.CELERY_TASK_ALWAYS_EAGER = True
    sim = half_world
    sim.configure(add_confirm_seconds=None)
    eid = sim.add_shopper("王芳")["external_userid"]
    sim.scan_contact_way(eid, state="bob-1")
    sim.scan_contact_way(eid, state="half-1")
    half = wait_for(lambda: receiver.of("add_half_external_contact"), 10, message="half add")[0]
    assert "welcome queued" in callback_routing.apply_event(dict(half))
    follow = FollowRelation.objects.get(staff__userid="alice", contact__external_userid=eid)
    assert follow.state == "half-1" and follow.deleted_by_staff_at is None
    assert WelcomeMessage.objects.get(follow=follow).status == WelcomeMessage.Status.SENT
    assert follow.contact.events.filter(kind=ContactEvent.Kind.HALF_ADDED).exists()
    assert [m["kind"] for m in sim.inbox(eid)] == ["welcome"]
