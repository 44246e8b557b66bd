"""Callbacks as WeCom sends them, received by an independent decrypting receiver: events, retries, timeouts,
URL verification, no callbacks for API changes, knobs."""

import time

from tests.conftest import wait_for


def test_add_event_delivered_signed_and_encrypted(sim, wx, receiver):
    sim.add_member("alice")
    # skip_verify false: the member accepts the request, a plain add_external_contact (no half add first)
    wx.post("externalcontact/add_contact_way", {"type": 1, "scene": 2, "user": ["alice"], "state": "store-9",
                                                "skip_verify": False})
    eid = sim.add_shopper("王芳")["external_userid"]
    added = sim.scan_contact_way(eid, state="store-9")
    wait_for(lambda: receiver.of("add_external_contact"), 10, message="add_external_contact")
    event = receiver.of("add_external_contact")[0]
    assert receiver.bad == []
    assert event["ToUserName"] == sim.corp()["corpid"] and event["FromUserName"] == "sys"
    assert event["MsgType"] == "event" and event["Event"] == "change_external_contact"
    assert event["UserID"] == "alice" and event["ExternalUserID"] == eid and event["State"] == "store-9"
    assert event["WelcomeCode"] == added["welcome_code"] and int(event["CreateTime"]) > 0
    sim.delete_staff(eid, "alice")
    wait_for(lambda: receiver.of("del_follow_user"), 10, message="del_follow_user")
    # Changes through the API send nothing.
    wx.post("externalcontact/remark", {"userid": "alice", "external_userid": eid, "remark": "VIP"})
    wx.post("externalcontact/add_corp_tag", {"group_name": "G", "tag": [{"name": "T"}]})
    sim.drain(10)
    assert [e["ChangeType"] for e in receiver.events] == ["add_external_contact", "del_follow_user"]
    assert sim.stats()["callbacks"]["delivered"] == 2


def test_retries_on_500_until_success(sim, receiver):
    receiver.plan = [500, 503]
    sim.add_member("alice")
    sim.create_groupchat("alice", "G")
    drained = sim.drain(10)
    assert drained["pending"] == 0 and drained["delivered"] == 1
    assert receiver.posts == 3 and len(receiver.of("create")) == 1


def test_gives_up_after_configured_retries(sim, receiver):
    sim.configure(callback_retries=1, callback_retry_delay=0.1)
    receiver.plan = [500, 500, 500]
    sim.add_member("alice")
    sim.create_groupchat("alice", "G")
    drained = sim.drain(10)
    assert drained["failed"] == 1 and receiver.posts == 2
    callback = sim.callbacks()[0]
    assert callback["status"] == "failed" and callback["last_status"] == 500 and callback["attempts"] == 2


def test_slow_receiver_times_out_and_is_retried(sim, receiver):
    sim.configure(callback_timeout=0.3, callback_retry_delay=0.1)
    receiver.plan = [("sleep", 0.6)]
    sim.add_member("alice")
    sim.create_groupchat("alice", "G")
    drained = sim.drain(10)
    assert drained["delivered"] == 1
    assert receiver.posts == 2
    assert "Timeout" in sim.callbacks()[0]["last_error"]


def test_verify_url(sim, receiver):
    answer = sim.verify_url()
    assert answer["ok"] is True and answer["answer"] == answer["expected"]
    sim.configure(callback_token="someone-else")
    assert sim.verify_url()["ok"] is False


def test_duplicate_and_drop_knobs(sim, receiver):
    sim.configure(duplicate_rate=1.0)
    sim.add_member("alice")
    sim.create_groupchat("alice", "G")
    sim.drain(10)
    wait_for(lambda: len(receiver.events) == 2, 5, message="duplicate delivery")
    assert receiver.events[0] == receiver.events[1]
    sim.configure(duplicate_rate=0.0, drop_rate=1.0)
    sim.create_groupchat("alice", "H")
    drained = sim.drain(10)
    assert drained["dropped"] == 1 and len(receiver.events) == 2


def test_delivery_survives_unreachable_crm(sim):
    sim.configure(callback_url="http://127.0.0.1:9/unreachable", callback_retries=0, callback_timeout=0.5,
                  drop_rate=0.0)
    sim.add_member("alice")
    sim.create_groupchat("alice", "G")
    drained = sim.drain(10)
    assert drained["failed"] == 1
    time.sleep(0.1)


def test_client_edits_console_tags_and_dismiss(sim, wx, world, receiver):
    sim.drain(10)
    tags = sim.console_add_tags("Tier", ["Gold"])
    sim.member_edit_customer("alice", world["eid"], remark="VIP", add_tag=[tags["tag"][0]["id"]])
    follow = wx.get("externalcontact/get", external_userid=world["eid"])["follow_user"][0]
    assert follow["remark"] == "VIP" and follow["tags"][0]["tag_name"] == "Gold"
    sim.console_delete_tag(tags["tag"][0]["id"])
    chat_id = sim.create_groupchat("alice", "G")["chat_id"]
    sim.dismiss_groupchat(chat_id)
    sim.drain(10)
    # The world's own adds may still be arriving (the first drain can end early on a loaded machine): not ours.
    kinds = [(e["Event"], e["ChangeType"], e.get("TagType")) for e in receiver.events
             if e["ChangeType"] not in ("add_external_contact", "add_half_external_contact")]
    assert kinds == [
        ("change_external_tag", "create", "tag_group"),
        ("change_external_tag", "create", "tag"),
        ("change_external_contact", "edit_external_contact", None),
        ("change_external_tag", "delete", "tag"),
        ("change_external_chat", "create", None),
        ("change_external_chat", "dismiss", None),
    ]


def test_reorder_knob_still_delivers_everything(sim, receiver):
    sim.configure(reorder=True)
    sim.add_member("alice")
    chats = {sim.create_groupchat("alice", f"g{i}")["chat_id"] for i in range(6)}
    assert sim.drain(10)["delivered"] == 6
    assert {e["ChatId"] for e in receiver.of("create")} == chats
