"""Contract tests: every client method against the simulator, over real HTTP (the simulator stands for WeCom)."""

from __future__ import annotations

import time

import pytest

from crm.wecom.client import get_client
from crm.wecom.errors import WeComError


@pytest.fixture
def world(sim):
    """Two members with customer contact, one shopper who scanned zhangsan's contact way."""
    # These tests exercise the client alone: the simulator drops its callbacks so that a running CRM worker does not
    # act on this add (it would send the welcome message itself and use up the code these tests send with).
    sim.patch("corp", {"drop_rate": 1.0})
    sim.post("members", {"userid": "zhangsan", "name": "张三"})
    sim.post("members", {"userid": "lisi", "name": "李四"})
    client = get_client()
    way = client.add_contact_way(type=1, scene=2, state="store-sh-001", user=["zhangsan"], remark="store")
    shopper = sim.post("shoppers", {"name": "Alice"})
    scan = sim.post(f"shoppers/{shopper['external_userid']}/scan_contact_way", {"config_id": way["config_id"]})
    return {"client": client, "config_id": way["config_id"], "eid": shopper["external_userid"], "scan": scan}


def test_members(world):
    client = world["client"]
    user = client.user_get("zhangsan")
    assert user["userid"] == "zhangsan" and user["name"] == "张三"
    page = client.user_list_id(limit=1)
    assert len(page["dept_user"]) == 1 and page["next_cursor"]
    assert sorted(u["userid"] for u in client.iter_user_list_id(limit=1)) == ["lisi", "zhangsan"]
    assert set(client.get_follow_user_list()["follow_user"]) == {"zhangsan", "lisi"}
    with pytest.raises(WeComError) as exc:
        client.user_get("nobody")
    assert exc.value.errcode in (60111, 40003) and exc.value.permanent


def test_external_contacts(world):
    client, eid = world["client"], world["eid"]
    assert client.externalcontact_list("zhangsan")["external_userid"] == [eid]
    got = client.externalcontact_get(eid)
    assert got["external_contact"]["external_userid"] == eid and got["external_contact"]["name"] == "Alice"
    (follow,) = got["follow_user"]
    assert follow["userid"] == "zhangsan" and follow["state"] == "store-sh-001"
    assert client.externalcontact_get_all(eid)["follow_user"][0]["userid"] == "zhangsan"
    batch = client.batch_get_by_user(["zhangsan"], limit=10)
    assert batch["external_contact_list"][0]["follow_info"]["userid"] == "zhangsan"
    items = list(client.iter_batch_get_by_user(["zhangsan", "lisi"]))
    assert [i["external_contact"]["external_userid"] for i in items] == [eid]
    assert client.remark("zhangsan", eid, remark="VIP Alice", description="likes tea")["errcode"] == 0
    assert client.externalcontact_get(eid)["follow_user"][0]["remark"] == "VIP Alice"
    openid = client.convert_to_openid(eid)["openid"]
    assert openid
    with pytest.raises(WeComError) as exc:
        client.remark("lisi", eid, remark="x")
    assert exc.value.errcode == 84061


def test_corp_tags(world):
    client, eid = world["client"], world["eid"]
    created = client.add_corp_tag(group_name="Level", tag=[{"name": "Gold"}, {"name": "Silver"}])["tag_group"]
    group_id = created["group_id"]
    gold, silver = (t["id"] for t in created["tag"])
    listed = client.get_corp_tag_list()["tag_group"]
    assert any(g["group_id"] == group_id for g in listed)
    assert client.get_corp_tag_list(tag_id=[gold])["tag_group"][0]["tag"][0]["id"] == gold
    client.edit_corp_tag(gold, name="Platinum")
    names = {t["name"] for t in client.get_corp_tag_list(group_id=[group_id])["tag_group"][0]["tag"]}
    assert "Platinum" in names
    client.mark_tag("zhangsan", eid, add_tag=[gold, silver])
    client.mark_tag("zhangsan", eid, remove_tag=[silver])
    tags = client.externalcontact_get(eid)["follow_user"][0]["tags"]
    assert [t.get("tag_id") for t in tags if t.get("type") == 1] == [gold]
    client.del_corp_tag(tag_id=[silver])
    with pytest.raises(WeComError) as exc:
        client.mark_tag("zhangsan", eid, add_tag=["etNOPE"])
    assert exc.value.errcode == 40068


def test_contact_ways_and_welcome(world, settings):
    client, config_id = world["client"], world["config_id"]
    way = client.get_contact_way(config_id)["contact_way"]
    assert way["config_id"] == config_id and way["state"] == "store-sh-001" and way["qr_code"]
    client.update_contact_way(config_id, remark="renamed", user=["lisi"])
    assert client.get_contact_way(config_id)["contact_way"]["remark"] == "renamed"
    listed = client.list_contact_way(start_time=int(time.time()) - 3600, end_time=int(time.time()) + 60)
    assert config_id in [w["config_id"] for w in listed["contact_way"]]
    code = world["scan"]["welcome_code"]
    assert client.send_welcome_msg(code, text={"content": "欢迎!"})["errcode"] == 0
    with pytest.raises(WeComError) as exc:
        client.send_welcome_msg(code, text={"content": "again"})
    assert exc.value.errcode in (41050, 41051) and exc.value.permanent
    client.del_contact_way(config_id)
    with pytest.raises(WeComError) as exc:
        client.get_contact_way(config_id)
    assert exc.value.errcode == 41044


def test_mass_messages(world, sim):
    client, eid = world["client"], world["eid"]
    sim.patch("corp", {"mass_dispatch_seconds": 0, "confirm_delay_seconds": None})
    created = client.add_msg_template(chat_type="single", external_userid=[eid, "wmUNKNOWN"], sender="zhangsan",
                                      text={"content": "11.11 sale"})  # fmt: skip
    msgid = created["msgid"]
    assert created["fail_list"] == ["wmUNKNOWN"]
    now = int(time.time())
    listed = client.get_groupmsg_list_v2(chat_type="single", start_time=now - 3600, end_time=now + 60)
    assert msgid in [m["msgid"] for m in listed["group_msg_list"]]
    assert msgid in [m["msgid"] for m in client.iter_groupmsg_list_v2(start_time=now - 3600, end_time=now + 60)]
    (task,) = client.get_groupmsg_task(msgid)["task_list"]
    assert task["userid"] == "zhangsan" and task["status"] == 0
    assert [t["userid"] for t in client.iter_groupmsg_task(msgid)] == ["zhangsan"]
    (result,) = client.get_groupmsg_send_result(msgid, "zhangsan")["send_list"]
    assert result["external_userid"] == eid and result["status"] == 0
    assert [r["external_userid"] for r in client.iter_groupmsg_send_result(msgid, "zhangsan")] == [eid]
    client.remind_groupmsg_send(msgid)
    client.cancel_groupmsg_send(msgid)
    with pytest.raises(WeComError) as exc:
        client.cancel_groupmsg_send(msgid)
    assert exc.value.errcode == 41093


def test_on_the_job_transfer(world):
    client, eid = world["client"], world["eid"]
    result = client.transfer_customer("zhangsan", "lisi", [eid, "wmNOTAFOLLOWER"])
    codes = {c["external_userid"]: c["errcode"] for c in result["customer"]}
    assert codes[eid] == 0 and codes["wmNOTAFOLLOWER"] != 0  # per-item result inside errcode 0
    (row,) = client.transfer_result("zhangsan", "lisi")["customer"]
    assert row["external_userid"] == eid and row["status"] == 2
    assert [r["status"] for r in client.iter_transfer_result("zhangsan", "lisi")] == [2]
    with pytest.raises(WeComError) as exc:
        client.transfer_customer("zhangsan", "zhangsan", [eid])
    assert exc.value.errcode == 40130


def test_resigned_transfer(world, sim):
    client, eid = world["client"], world["eid"]
    chat = sim.post("groupchats", {"owner": "zhangsan", "name": "VIP 1"})["chat_id"]
    with pytest.raises(WeComError) as exc:
        client.resigned_transfer_customer("zhangsan", "lisi", [eid])
    assert exc.value.errcode == 40097
    sim.post("members/zhangsan/resign")
    unassigned = client.get_unassigned_list(page_size=10)
    assert [i["external_userid"] for i in unassigned["info"]] == [eid]
    assert [i["handover_userid"] for i in client.iter_unassigned_list()] == ["zhangsan"]
    result = client.resigned_transfer_customer("zhangsan", "lisi", [eid])
    assert result["customer"][0]["errcode"] == 0
    assert client.resigned_transfer_result("zhangsan", "lisi")["customer"][0]["status"] == 2
    assert [r["external_userid"] for r in client.iter_resigned_transfer_result("zhangsan", "lisi")] == [eid]
    moved = client.groupchat_transfer([chat, "wrNOPE"], "lisi")
    assert [f["chat_id"] for f in moved["failed_chat_list"]] == ["wrNOPE"]
    assert client.groupchat_get(chat)["group_chat"]["owner"] == "lisi"


def test_groups_and_join_ways(world, sim):
    client = world["client"]
    chat = sim.post("groupchats", {"owner": "zhangsan", "name": "VIP 1"})["chat_id"]
    listed = client.groupchat_list(status_filter=0, owner_filter={"userid_list": ["zhangsan"]})
    assert [c["chat_id"] for c in listed["group_chat_list"]] == [chat]
    assert [c["chat_id"] for c in client.iter_groupchat_list(limit=1)] == [chat]
    got = client.groupchat_get(chat, need_name=1)["group_chat"]
    assert got["chat_id"] == chat and got["owner"] == "zhangsan" and got["member_version"]
    way = client.groupchat_add_join_way(scene=2, chat_id_list=[chat], state="vip-1", remark="VIP")
    join = client.get_join_way(way["config_id"])["join_way"]
    assert join["chat_id_list"] == [chat] and join["state"] == "vip-1" and join["qr_code"]
    client.update_join_way(way["config_id"], scene=2, chat_id_list=[chat], remark="VIP2", state="vip-2")
    assert client.get_join_way(way["config_id"])["join_way"]["state"] == "vip-2"
    client.del_join_way(way["config_id"])
    with pytest.raises(WeComError) as exc:
        client.get_join_way(way["config_id"])
    assert exc.value.errcode == 41044
    moved = client.groupchat_onjob_transfer([chat], "lisi")
    assert moved["failed_chat_list"] == []
    assert client.groupchat_get(chat)["group_chat"]["owner"] == "lisi"


def test_app_message(world):
    client = world["client"]
    sent = client.message_send("text", touser="zhangsan|ghost", text={"content": "new VIP customer"})
    assert sent["invaliduser"] == "ghost"
    with pytest.raises(WeComError):
        client.message_send("text", text={"content": "to nobody"})
