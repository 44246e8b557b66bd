"""Contact ways, external contacts, cursors, tags and welcome codes over real HTTP."""

from wecom_sim.driver import SimAdminError


def test_contact_way_crud(sim, wx):
    sim.add_member("alice")
    sim.add_member("bob")
    sim.add_member("idle", activated=False)
    created = wx.post("externalcontact/add_contact_way", {"type": 2, "scene": 2, "user": ["alice", "bob"],
                                                          "state": "campaign-11", "remark": "x" * 40})
    assert created["errcode"] == 0 and len(created["config_id"]) == 32 and created["qr_code"].startswith("https://")
    got = wx.post("externalcontact/get_contact_way", {"config_id": created["config_id"]})["contact_way"]
    assert got["state"] == "campaign-11" and got["user"] == ["alice", "bob"] and len(got["remark"]) == 30
    assert wx.post("externalcontact/update_contact_way", {"config_id": created["config_id"], "user": ["bob"]})[
        "errcode"] == 0
    assert wx.post("externalcontact/get_contact_way", {"config_id": created["config_id"]})["contact_way"]["user"] == [
        "bob"]
    assert wx.post("externalcontact/add_contact_way", {"type": 1, "scene": 5, "user": ["alice"]})["errcode"] == 41040
    assert wx.post("externalcontact/add_contact_way", {"scene": 2, "user": ["alice"]})["errcode"] == 41037
    assert wx.post("externalcontact/add_contact_way", {"type": 1, "scene": 2, "user": ["idle"]})["errcode"] == 41054
    assert wx.post("externalcontact/add_contact_way", {"type": 1, "scene": 2, "user": ["alice"],
                                                       "state": "s" * 31})["errcode"] == 40058
    listed = wx.post("externalcontact/list_contact_way", {"limit": 5000})
    assert [w["config_id"] for w in listed["contact_way"]] == [created["config_id"]]
    assert wx.post("externalcontact/del_contact_way", {"config_id": created["config_id"]})["errcode"] == 0
    missing = wx.post("externalcontact/get_contact_way", {"config_id": created["config_id"]})
    assert missing["errcode"] == 41044 and missing["contact_way"] == {}
    assert wx.post("externalcontact/get_contact_way", {})["errcode"] == 41043


def test_multi_contact_way_round_robin(sim, wx):
    sim.add_member("alice")
    sim.add_member("bob")
    way = wx.post("externalcontact/add_contact_way", {"type": 2, "scene": 2, "user": ["alice", "bob"], "state": "rr"})
    owners = [sim.scan_contact_way(sim.add_shopper(f"s{i}")["external_userid"], config_id=way["config_id"])["userid"]
              for i in range(4)]
    assert owners == ["alice", "bob", "alice", "bob"]


def test_get_list_and_follow_user_fields(sim, wx, world):
    eid = world["eid"]
    assert world["added"]["userid"] == "alice" and world["added"]["welcome_code"]
    assert wx.get("externalcontact/list", userid="alice")["external_userid"] == [eid]
    got = wx.get("externalcontact/get", external_userid=eid)
    assert got["external_contact"]["external_userid"] == eid and got["external_contact"]["type"] == 1
    assert got["external_contact"]["name"] == "王芳"
    follow = got["follow_user"][0]
    assert follow["userid"] == "alice" and follow["state"] == "store-1" and follow["add_way"] == 1
    assert follow["oper_userid"] == eid and "next_cursor" not in got
    missing = wx.get("externalcontact/get", external_userid="wmnobody")
    assert missing["errcode"] == 40096 and missing["follow_user"] == [] and missing["external_contact"] == {}
    assert wx.post("externalcontact/convert_to_openid", {"external_userid": eid})["openid"] == world["shopper"][
        "openid"]
    assert wx.post("externalcontact/convert_to_openid", {"external_userid": "wo123"})["errcode"] == 40096


def test_batch_get_by_user_cursor_clamp_and_binding(sim, wx, world):
    added = sim.run_scenario(seed=7, customers=120, state="store-1")
    assert len(added["external_userids"]) == 120 and {a["userid"] for a in added["added"]} == {"alice"}
    first = wx.post("externalcontact/batch/get_by_user", {"userid_list": ["alice"], "limit": 1000})
    assert len(first["external_contact_list"]) == 100 and first["next_cursor"]  # clamped to 100
    assert first["fail_info"] == {"unlicensed_userid_list": []}
    item = first["external_contact_list"][0]
    assert item["follow_info"]["userid"] == "alice" and item["follow_info"]["tag_id"] == []
    second = wx.post("externalcontact/batch/get_by_user", {"userid_list": ["alice"], "cursor": first["next_cursor"]})
    assert len(second["external_contact_list"]) == 21 and second["next_cursor"] == ""
    default = wx.post("externalcontact/batch/get_by_user", {"userid_list": ["alice"]})
    assert len(default["external_contact_list"]) == 50
    # A cursor is bound to its query.
    other = wx.post("externalcontact/batch/get_by_user", {"userid_list": ["bob"], "cursor": first["next_cursor"]})
    assert other["errcode"] == 40058 and other["external_contact_list"] == []
    assert wx.post("externalcontact/batch/get_by_user", {"userid_list": ["alice"], "cursor": "garbage"})[
        "errcode"] == 40058


def test_remark_and_relationship_rules(sim, wx, world):
    eid = world["eid"]
    assert wx.post("externalcontact/remark", {"userid": "alice", "external_userid": eid, "remark": "VIP",
                                              "remark_mobiles": ["13800000000"]})["errcode"] == 0
    follow = wx.get("externalcontact/get", external_userid=eid)["follow_user"][0]
    assert follow["remark"] == "VIP" and follow["remark_mobiles"] == ["13800000000"]
    assert wx.post("externalcontact/remark", {"userid": "alice", "external_userid": eid})["errcode"] == 40063
    assert wx.post("externalcontact/remark", {"userid": "bob", "external_userid": eid, "remark": "x"})[
        "errcode"] == 84061
    # The customer deletes the member: one-way, APIs still work.
    sim.delete_staff(eid, "alice")
    assert wx.get("externalcontact/list", userid="alice")["external_userid"] == [eid]
    # The member deletes the customer: gone, 84061.
    sim.scan_contact_way(eid, state="store-1")
    sim.member_delete_customer("alice", eid)
    assert wx.get("externalcontact/list", userid="alice")["external_userid"] == []
    assert wx.post("externalcontact/remark", {"userid": "alice", "external_userid": eid, "remark": "x"})[
        "errcode"] == 84061


def test_friend_limit(sim, wx, world):
    sim.configure(friend_limit=1)
    other = sim.add_shopper("李强")["external_userid"]
    try:
        sim.scan_contact_way(other, state="store-1")
        raise AssertionError("expected the member's customer limit")
    except SimAdminError as err:
        assert err.status == 409 and err.body["error"]["code"] == "friend_limit"


def test_tags(sim, wx, world):
    created = wx.post("externalcontact/add_corp_tag", {"group_name": "Tier", "tag": [{"name": "Gold"},
                                                                                      {"name": "Silver"}]})
    group = created["tag_group"]
    assert group["group_id"].startswith("et") and [t["name"] for t in group["tag"]] == ["Gold", "Silver"]
    gold, silver = (t["id"] for t in group["tag"])
    assert wx.post("externalcontact/add_corp_tag", {"group_name": "Tier", "tag": [{"name": "Gold"}]})[
        "errcode"] == 40071
    assert wx.post("externalcontact/add_corp_tag", {"group_id": "etnope", "tag": [{"name": "x"}]})["errcode"] == 40068
    assert wx.post("externalcontact/edit_corp_tag", {"id": gold, "name": "Gold+"})["errcode"] == 0
    listed = wx.post("externalcontact/get_corp_tag_list", {})["tag_group"]
    assert listed[0]["tag"][0]["name"] == "Gold+"
    eid = world["eid"]
    assert wx.post("externalcontact/mark_tag", {"userid": "alice", "external_userid": eid, "add_tag": [gold]})[
        "errcode"] == 0
    assert wx.post("externalcontact/mark_tag", {"userid": "alice", "external_userid": eid})["errcode"] == 40063
    assert wx.post("externalcontact/mark_tag", {"userid": "alice", "external_userid": eid, "add_tag": ["etx"]})[
        "errcode"] == 40068
    follow = wx.get("externalcontact/get", external_userid=eid)["follow_user"][0]
    assert follow["tags"] == [{"group_name": "Tier", "tag_name": "Gold+", "tag_id": gold, "type": 1}]
    assert wx.post("externalcontact/del_corp_tag", {"tag_id": [gold, silver]})["errcode"] == 0
    assert wx.post("externalcontact/get_corp_tag_list", {})["tag_group"] == []  # last tag gone -> group gone
    by_id = wx.post("externalcontact/get_corp_tag_list", {"tag_id": [gold]})["tag_group"]
    assert by_id[0]["tag"][0]["deleted"] is True


def test_welcome_code_once_and_expiry(sim, wx, world):
    code = world["added"]["welcome_code"]
    body = {"welcome_code": code, "text": {"content": "欢迎!"},
            "attachments": [{"msgtype": "link", "link": {"title": "Card", "url": "http://example.invalid/card"}}]}
    assert wx.post("externalcontact/send_welcome_msg", body)["errcode"] == 0
    assert wx.post("externalcontact/send_welcome_msg", body)["errcode"] == 41051
    inbox = sim.inbox(world["eid"])
    assert inbox[0]["kind"] == "welcome" and inbox[0]["text"] == "欢迎!" and inbox[0]["from_userid"] == "alice"
    assert inbox[0]["attachments"][0]["link"]["url"] == "http://example.invalid/card"
    other = sim.add_shopper("李强")["external_userid"]
    late = sim.scan_contact_way(other, state="store-1")["welcome_code"]
    sim.advance(21)
    assert wx.post("externalcontact/send_welcome_msg", {"welcome_code": late, "text": {"content": "x"}})[
        "errcode"] == 41050
    assert wx.post("externalcontact/send_welcome_msg", {"text": {"content": "x"}})["errcode"] == 41049
    too_many = {"welcome_code": "x", "attachments": [{"msgtype": "image", "image": {"media_id": "m"}}] * 10}
    assert wx.post("externalcontact/send_welcome_msg", too_many)["errcode"] == 41064
