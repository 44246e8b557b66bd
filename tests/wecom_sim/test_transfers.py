"""Customer inheritance driven by the simulated clock, and group transfers."""


def _transfer(wx, eids, api="externalcontact/transfer_customer", handover="alice", takeover="bob"):
    return wx.post(api, {"handover_userid": handover, "takeover_userid": takeover, "external_userid": eids})


def _status(wx, api="externalcontact/transfer_result", handover="alice", takeover="bob"):
    return {c["external_userid"]: c for c in wx.post(api, {"handover_userid": handover,
                                                           "takeover_userid": takeover})["customer"]}


def test_onjob_transfer_waits_24h_then_takes_over(sim, wx, world, receiver):
    eid = world["eid"]
    started = _transfer(wx, [eid, "wmnobody"])
    assert started["errcode"] == 0
    assert started["customer"] == [{"external_userid": eid, "errcode": 0},
                                   {"external_userid": "wmnobody", "errcode": 40096}]
    waiting = _status(wx)[eid]
    assert waiting["status"] == 2 and waiting["takeover_time"] >= sim.clock() + 86000
    assert _transfer(wx, [eid])["customer"][0]["errcode"] == 40129
    sim.advance(86401)
    assert _status(wx)[eid]["status"] == 1
    assert wx.get("externalcontact/list", userid="bob")["external_userid"] == [eid]
    assert wx.get("externalcontact/list", userid="alice")["external_userid"] == []
    sim.drain(10)
    removed = receiver.of("del_external_contact")
    assert removed and removed[-1]["UserID"] == "alice" and removed[-1]["Source"] == "DELETE_BY_TRANSFER"
    assert any(e["UserID"] == "bob" for e in receiver.of("add_external_contact"))


def test_refusal_and_limits(sim, wx, world, receiver):
    eid = world["eid"]
    assert _transfer(wx, [eid], takeover="alice")["errcode"] == 40130
    assert _transfer(wx, [eid], handover="bob", takeover="alice")["customer"][0]["errcode"] == 40131
    _transfer(wx, [eid])
    sim.refuse_transfer(eid)
    assert _status(wx)[eid]["status"] == 3
    sim.drain(10)
    assert receiver.of("transfer_fail")[-1]["FailReason"] == "customer_refused"
    assert receiver.of("transfer_fail")[-1]["UserID"] == "bob"
    # Takeover member at the customer cap: status 4.
    sim.configure(friend_limit=1)
    other = sim.add_shopper("李强")["external_userid"]
    sim.add_member("carol")
    way = wx.post("externalcontact/add_contact_way", {"type": 1, "scene": 2, "user": ["bob"], "state": "b"})
    sim.scan_contact_way(other, config_id=way["config_id"])
    _transfer(wx, [eid])
    sim.advance(86401)
    assert _status(wx)[eid]["status"] == 4
    sim.drain(10)
    assert receiver.of("transfer_fail")[-1]["FailReason"] == "customer_limit_exceed"


def test_two_transfers_per_90_days(sim, wx, world):
    eid = world["eid"]
    _transfer(wx, [eid])
    sim.advance(86401)
    _transfer(wx, [eid], handover="bob", takeover="alice")
    sim.advance(86401)
    assert _transfer(wx, [eid])["customer"][0]["errcode"] == 40128


def test_resigned_flow_and_unassigned_list(sim, wx, world):
    eid = world["eid"]
    assert _transfer(wx, [eid], api="externalcontact/resigned/transfer_customer")["errcode"] == 40097
    sim.resign("alice")
    unassigned = wx.post("externalcontact/get_unassigned_list", {"page_size": 100})
    assert unassigned["info"][0]["handover_userid"] == "alice" and unassigned["info"][0]["external_userid"] == eid
    assert unassigned["is_last"] is True
    assert _transfer(wx, [eid], api="externalcontact/resigned/transfer_customer")["customer"][0]["errcode"] == 0
    assert wx.post("externalcontact/get_unassigned_list", {})["info"] == []
    sim.advance(86401)
    assert _status(wx, api="externalcontact/resigned/transfer_result")[eid]["status"] == 1
    assert wx.get("externalcontact/get", external_userid=eid)["follow_user"][0]["userid"] == "bob"


def test_group_transfers(sim, wx, world):
    chat_id = sim.create_groupchat("alice", "VIP")["chat_id"]
    failed = wx.post("externalcontact/groupchat/transfer", {"chat_id_list": [chat_id, "wrnope"], "new_owner": "bob"})
    assert failed["errcode"] == 0
    assert {f["chat_id"]: f["errcode"] for f in failed["failed_chat_list"]} == {chat_id: 90500, "wrnope": 90501}
    assert wx.post("externalcontact/groupchat/onjob_transfer", {"chat_id_list": [chat_id], "new_owner": "bob"})[
        "failed_chat_list"] == []
    assert wx.post("externalcontact/groupchat/get", {"chat_id": chat_id})["group_chat"]["owner"] == "bob"
    sim.resign("bob")
    listed = wx.post("externalcontact/groupchat/list", {"owner_filter": {"userid_list": ["bob"]}})
    assert listed["group_chat_list"] == [{"chat_id": chat_id, "status": 1}]
    assert wx.post("externalcontact/groupchat/list", {})["group_chat_list"] == []
    done = wx.post("externalcontact/groupchat/transfer", {"chat_id_list": [chat_id], "new_owner": "alice"})
    assert done["failed_chat_list"] == []
    assert wx.post("externalcontact/groupchat/get", {"chat_id": chat_id})["group_chat"]["owner"] == "alice"
