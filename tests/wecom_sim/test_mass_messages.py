"""Mass messages: nothing delivered before confirmation; friend and receive-quota statuses; cancel, remind."""

import time


def _send(wx, eids, sender=None, content="11.11 sale"):
    body = {"chat_type": "single", "external_userid": eids, "text": {"content": content}}
    if sender:
        body["sender"] = sender
    return wx.post("externalcontact/add_msg_template", body)


def _results(wx, msgid, userid="alice"):
    return {r["external_userid"]: r for r in wx.post("externalcontact/get_groupmsg_send_result",
                                                     {"msgid": msgid, "userid": userid})["send_list"]}


def test_confirm_friend_and_quota_statuses(sim, wx, world):
    sim.configure(confirm_delay_seconds=None, receive_quota="day1")
    eid = world["eid"]
    gone = sim.add_shopper("李强")["external_userid"]
    sim.scan_contact_way(gone, state="store-1")
    created = _send(wx, [eid, gone, "wmstranger"])
    assert created["errcode"] == 0 and created["msgid"].startswith("msg") and created["fail_list"] == ["wmstranger"]
    msgid = created["msgid"]
    tasks = wx.post("externalcontact/get_groupmsg_task", {"msgid": msgid})["task_list"]
    assert tasks == [{"userid": "alice", "status": 0}]
    assert {r["status"] for r in _results(wx, msgid).values()} == {0}
    assert [m for m in sim.inbox(eid) if m["kind"] == "mass"] == []
    sim.delete_staff(gone, "alice")  # one-way now: the mass message can't reach them
    assert sim.confirm_groupmsg(msgid)["confirmed"] == 1
    results = _results(wx, msgid)
    assert results[eid]["status"] == 1 and results[eid]["send_time"] > 0
    assert results[gone]["status"] == 2 and "send_time" not in results[gone]
    assert wx.post("externalcontact/get_groupmsg_task", {"msgid": msgid})["task_list"][0]["status"] == 2
    assert sim.inbox(eid)[-1]["text"] == "11.11 sale"
    second = _send(wx, [eid])["msgid"]
    sim.confirm_groupmsg(second)
    assert _results(wx, second)[eid]["status"] == 3  # 1 per day
    sim.advance(86400)
    third = _send(wx, [eid])["msgid"]
    sim.confirm_groupmsg(third)
    assert _results(wx, third)[eid]["status"] == 1


def test_confirm_after_configured_delay(sim, wx, world):
    sim.configure(confirm_delay_seconds=0.5)
    msgid = _send(wx, [world["eid"]])["msgid"]
    assert _results(wx, msgid)[world["eid"]]["status"] == 0
    time.sleep(0.7)
    assert _results(wx, msgid)[world["eid"]]["status"] == 1


def test_no_sendable_customer_and_cancel_and_remind(sim, wx, world):
    sim.configure(confirm_delay_seconds=None)
    empty = _send(wx, ["wmnobody"])
    assert empty["errcode"] == 41048 and empty["fail_list"] == [] and empty["msgid"] == ""
    msgid = _send(wx, [world["eid"]])["msgid"]
    assert [wx.post("externalcontact/remind_groupmsg_send", {"msgid": msgid})["errcode"] for _ in range(4)] == [
        0, 0, 0, 41094]
    assert wx.post("externalcontact/cancel_groupmsg_send", {"msgid": msgid})["errcode"] == 0
    assert wx.post("externalcontact/cancel_groupmsg_send", {"msgid": msgid})["errcode"] == 41093
    sim.confirm_groupmsg(msgid)
    assert _results(wx, msgid)[world["eid"]]["status"] == 0  # cancelled before the sender confirmed


def test_list_v2_window_and_paging(sim, wx, world):
    sim.configure(confirm_delay_seconds=None)
    for i in range(3):
        _send(wx, [world["eid"]], content=f"m{i}")
    now = int(sim.clock())
    too_long = wx.post("externalcontact/get_groupmsg_list_v2", {"start_time": now - 40 * 86400, "end_time": now})
    assert too_long["errcode"] == 40058 and too_long["group_msg_list"] == []
    first = wx.post("externalcontact/get_groupmsg_list_v2", {"start_time": now - 60, "end_time": now + 60,
                                                            "limit": 2})
    assert len(first["group_msg_list"]) == 2 and first["next_cursor"]
    rest = wx.post("externalcontact/get_groupmsg_list_v2", {"start_time": now - 60, "end_time": now + 60, "limit": 2,
                                                           "cursor": first["next_cursor"]})
    assert [m["text"]["content"] for m in rest["group_msg_list"]] == ["m2"] and rest["next_cursor"] == ""


def test_group_mass_message_reaches_members(sim, wx, world):
    sim.configure(confirm_delay_seconds=None)
    chat_id = sim.create_groupchat("alice", "VIP")["chat_id"]
    join = wx.post("externalcontact/groupchat/add_join_way", {"scene": 2, "chat_id_list": [chat_id], "state": "vip"})
    sim.join_group(world["eid"], config_id=join["config_id"])
    created = wx.post("externalcontact/add_msg_template", {"chat_type": "group", "sender": "alice",
                                                           "text": {"content": "group hello"}})
    sim.confirm_groupmsg(created["msgid"])
    result = wx.post("externalcontact/get_groupmsg_send_result", {"msgid": created["msgid"], "userid": "alice"})
    assert result["send_list"][0]["chat_id"] == chat_id and result["send_list"][0]["status"] == 1
    # (A running CRM worker may have sent this shopper a welcome message meanwhile: look for the group message.)
    group_messages = [m for m in sim.inbox(world["eid"]) if m["kind"] == "group"]
    assert [m["text"] for m in group_messages] == ["group hello"]


def test_dispatching_window_answers_41063(sim, wx, world):
    sim.configure(confirm_delay_seconds=None, mass_dispatch_seconds=60)
    msgid = _send(wx, [world["eid"]])["msgid"]
    busy = wx.post("externalcontact/get_groupmsg_task", {"msgid": msgid})
    assert busy["errcode"] == 41063 and busy["task_list"] == []
    sim.advance(61)
    assert wx.post("externalcontact/get_groupmsg_task", {"msgid": msgid})["errcode"] == 0
