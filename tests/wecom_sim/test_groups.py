"""Customer groups: join ways, size limit with auto-created rooms, groupchat/get and list."""

from wecom_sim.driver import SimAdminError


def test_join_way_crud_and_auto_create_when_full(sim, wx, world, receiver):
    sim.configure(group_size_limit=3)  # owner + 2 customers
    chat_id = sim.create_groupchat("alice", "VIP")["chat_id"]
    way = wx.post("externalcontact/groupchat/add_join_way", {"scene": 2, "chat_id_list": [chat_id], "state": "vip-1",
                                                             "room_base_name": "VIP ", "room_base_id": 10})
    got = wx.post("externalcontact/groupchat/get_join_way", {"config_id": way["config_id"]})["join_way"]
    assert got["qr_code"].startswith("https://") and got["chat_id_list"] == [chat_id] and got["state"] == "vip-1"
    eids = [world["eid"]] + [sim.add_shopper(f"s{i}")["external_userid"] for i in range(2)]
    rooms = [sim.join_group(eid, state="vip-1")["chat_id"] for eid in eids[:2]]
    assert rooms == [chat_id, chat_id]
    overflow = sim.join_group(eids[2], qr_code=got["qr_code"])["chat_id"]
    assert overflow != chat_id and overflow.startswith("wr")
    after = wx.post("externalcontact/groupchat/get_join_way", {"config_id": way["config_id"]})["join_way"]
    assert after["chat_id_list"] == [chat_id, overflow]
    group = wx.post("externalcontact/groupchat/get", {"chat_id": chat_id, "need_name": 1})["group_chat"]
    members = {m["userid"]: m for m in group["member_list"]}
    assert members[eids[0]]["type"] == 2 and members[eids[0]]["join_scene"] == 3
    assert members[eids[0]]["state"] == "vip-1" and members[eids[0]]["name"] == "王芳"
    assert members["alice"]["type"] == 1 and group["owner"] == "alice"
    new_room = wx.post("externalcontact/groupchat/get", {"chat_id": overflow})["group_chat"]
    assert new_room["name"] == "VIP 11"
    sim.leave_group(eids[0], chat_id)
    sim.drain(10)
    creates = receiver.of("create")
    assert {c["ChatId"] for c in creates} == {chat_id, overflow}
    updates = receiver.of("update")
    joins = [u for u in updates if u["UpdateDetail"] == "add_member"]
    assert len(joins) == 3 and joins[0]["JoinScene"] == "3" and joins[0]["MemChangeList"] == [eids[0]]
    leave = next(u for u in updates if u["UpdateDetail"] == "del_member")
    assert leave["QuitScene"] == "0" and leave["MemChangeCnt"] == "1"
    final = wx.post("externalcontact/groupchat/get", {"chat_id": chat_id})["group_chat"]
    assert leave["CurMemVer"] == final["member_version"] and leave["LastMemVer"] != leave["CurMemVer"]


def test_join_way_without_auto_create_and_limits(sim, wx, world):
    sim.configure(group_size_limit=1)
    chat_id = sim.create_groupchat("alice", "Full")["chat_id"]
    way = wx.post("externalcontact/groupchat/add_join_way", {"scene": 2, "chat_id_list": [chat_id],
                                                             "auto_create_room": 0, "state": "full"})
    try:
        sim.join_group(world["eid"], config_id=way["config_id"])
        raise AssertionError("expected group_full")
    except SimAdminError as err:
        assert err.status == 409 and err.body["error"]["code"] == "group_full"
    assert wx.post("externalcontact/groupchat/add_join_way", {"scene": 2, "chat_id_list": [chat_id] * 6})[
        "errcode"] == 41091
    assert wx.post("externalcontact/groupchat/add_join_way", {"scene": 3, "chat_id_list": [chat_id]})[
        "errcode"] == 41040
    assert wx.post("externalcontact/groupchat/update_join_way", {"config_id": way["config_id"], "scene": 2,
                                                                 "chat_id_list": [chat_id], "state": "new"})[
        "errcode"] == 0
    assert wx.post("externalcontact/groupchat/del_join_way", {"config_id": way["config_id"]})["errcode"] == 0
    assert wx.post("externalcontact/groupchat/get_join_way", {"config_id": way["config_id"]})["errcode"] == 41044
    assert wx.post("externalcontact/groupchat/get", {"chat_id": "wrnope"})["errcode"] == 90501


def test_groupchat_list_paging(sim, wx, world):
    chats = [sim.create_groupchat("alice", f"g{i}")["chat_id"] for i in range(3)]
    first = wx.post("externalcontact/groupchat/list", {"limit": 2})
    assert [c["chat_id"] for c in first["group_chat_list"]] == chats[:2] and first["next_cursor"]
    rest = wx.post("externalcontact/groupchat/list", {"limit": 2, "cursor": first["next_cursor"]})
    assert [c["chat_id"] for c in rest["group_chat_list"]] == chats[2:] and rest["next_cursor"] == ""


def test_groupchat_list_without_owner_filter_81017_when_too_many_visible(sim, wx):
    for userid in ("alice", "bob", "carol"):
        sim.add_member(userid)
    chat_id = sim.create_groupchat("alice", "G")["chat_id"]
    assert wx.post("externalcontact/groupchat/list", {})["errcode"] == 0
    sim.configure(groupchat_visible_limit=2)
    refused = wx.post("externalcontact/groupchat/list", {"limit": 10})
    assert refused["errcode"] == 81017 and refused["group_chat_list"] == [] and refused["next_cursor"] == ""
    filtered = wx.post("externalcontact/groupchat/list", {"owner_filter": {"userid_list": ["alice"]}})
    assert filtered["errcode"] == 0 and [c["chat_id"] for c in filtered["group_chat_list"]] == [chat_id]
    sim.resign("carol")  # resigned members are no longer visible
    assert wx.post("externalcontact/groupchat/list", {})["errcode"] == 0
