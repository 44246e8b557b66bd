"""Envelope, tokens, frequency limits, faults, malformed bodies and the admin key, over real HTTP."""

import re
import time

import pytest
import requests

from wecom_sim.driver import SimAdminError

ERRMSG_SHAPE = re.compile(r"^.+, hint: \[\d+\], from ip: [\d.]+, more info at "
                          r"https://open\.work\.weixin\.qq\.com/devtool/query\?e=-?\d+$")


def cgi(sim, api, **query):
    return requests.get(f"{sim.base}/wecom-sim/cgi-bin/{api}", params=query, timeout=10)


def test_gettoken_same_token_within_lifetime_and_counts(sim):
    corp = sim.corp()
    first = cgi(sim, "gettoken", corpid=corp["corpid"], corpsecret=corp["corpsecret"]).json()
    second = cgi(sim, "gettoken", corpid=corp["corpid"], corpsecret=corp["corpsecret"]).json()
    assert first["errcode"] == 0 and first["errmsg"] == "ok"
    assert first["access_token"] == second["access_token"]
    assert 7190 <= first["expires_in"] <= 7200
    assert sim.stats()["gettoken_calls"] == 2


def test_gettoken_bad_credentials(sim):
    corp = sim.corp()
    bad_corp = cgi(sim, "gettoken", corpid="wwnope", corpsecret=corp["corpsecret"]).json()
    assert bad_corp["errcode"] == 40013 and bad_corp["access_token"] == "" and ERRMSG_SHAPE.match(bad_corp["errmsg"])
    assert cgi(sim, "gettoken", corpid=corp["corpid"], corpsecret="wrong").json()["errcode"] == 40001
    assert cgi(sim, "gettoken", corpsecret="x").json()["errcode"] == 41002
    assert cgi(sim, "gettoken", corpid=corp["corpid"]).json()["errcode"] == 41004


def test_token_missing_invalid_expired_and_revoked(sim):
    sim.add_member("alice")
    token = sim.token()
    assert cgi(sim, "user/get", userid="alice").json()["errcode"] == 41001
    bad = cgi(sim, "externalcontact/get_follow_user_list", access_token="nope").json()
    assert bad["errcode"] == 40014 and bad["follow_user"] == []
    assert cgi(sim, "user/get", userid="alice", access_token=token).json()["name"] == "alice"
    sim.advance(7201)
    assert cgi(sim, "user/get", userid="alice", access_token=token).json()["errcode"] == 42001
    sim.configure(expired_token_errcode=40014)
    assert cgi(sim, "user/get", userid="alice", access_token=token).json()["errcode"] == 40014
    fresh = sim.token()
    assert fresh != token
    sim.revoke_tokens()
    assert cgi(sim, "user/get", userid="alice", access_token=fresh).json()["errcode"] == 40014
    assert sim.token() != fresh


def test_token_lifetime_configurable(sim):
    sim.configure(token_expires_in=2)
    token = sim.token()
    time.sleep(2.1)
    assert cgi(sim, "user/list", access_token=token).json()["errcode"] == 42001


def test_rate_limit_sliding_window_per_api(sim, wx):
    sim.configure(rate_limit_per_minute=3)
    codes = [wx.get("externalcontact/get_follow_user_list")["errcode"] for _ in range(4)]
    assert codes == [0, 0, 0, 45009]
    blocked = wx.get("externalcontact/get_follow_user_list")
    assert blocked["errcode"] == 45009 and blocked["follow_user"] == [] and "api freq out of limit" in blocked["errmsg"]
    assert wx.get("user/list")["errcode"] == 0  # another API has its own window
    sim.configure(rate_limit_per_minute=10000)
    assert wx.get("externalcontact/get_follow_user_list")["errcode"] == 0


def test_malformed_json_is_47001_not_500(sim, wx):
    response = requests.post(f"{wx.base}/externalcontact/batch/get_by_user", params={"access_token": wx.token},
                             data=b"{not json", timeout=10)
    assert response.status_code == 200
    body = response.json()
    assert body["errcode"] == 47001 and body["external_contact_list"] == []
    wrong_type = wx.post("externalcontact/batch/get_by_user", {"userid_list": "alice"})
    assert wrong_type["errcode"] == 47001


def test_get_on_post_only_endpoint(sim, wx):
    assert wx.get("externalcontact/add_contact_way")["errcode"] == 40058


def test_faults_rate_and_count(sim, wx):
    wx.auto_refresh = False
    sim.fault("externalcontact/get_follow_user_list", "-1", count=2)
    codes = [wx.get("externalcontact/get_follow_user_list")["errcode"] for _ in range(3)]
    assert codes == [-1, -1, 0]
    sim.fault("user/list", "5xx")
    response = requests.get(f"{wx.base}/user/list", params={"access_token": wx.token}, timeout=10)
    assert response.status_code == 502
    sim.clear_faults()
    assert wx.get("user/list")["errcode"] == 0
    sim.fault("*", "42001", rate=1.0, count=1)
    assert wx.get("user/list")["errcode"] == 42001
    sim.fault("user/list", "slow", delay_ms=300)
    started = time.monotonic()
    assert wx.get("user/list")["errcode"] == 0
    assert time.monotonic() - started >= 0.3
    sim.clear_faults()
    sim.fault("user/list", "timeout", delay_ms=1500)
    with pytest.raises(requests.Timeout):
        requests.get(f"{wx.base}/user/list", params={"access_token": wx.token}, timeout=0.5)


def test_admin_requires_key_and_reports_errors(sim):
    response = requests.get(f"{sim.base}/wecom-sim/admin/corp", timeout=10)
    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    with pytest.raises(SimAdminError) as err:
        sim.configure(receive_quota="weekly")
    assert err.value.status == 400 and err.value.body["error"]["field"] == "receive_quota"
    with pytest.raises(SimAdminError) as err:
        sim.scan_contact_way("wmnobody", state="x")
    assert err.value.status == 404


def test_corp_and_clock(sim):
    corp = sim.corp()
    expected = {"corpid", "corpsecret", "agentid", "token", "encoding_aes_key", "callback_url", "mch_id", "now"}
    assert expected <= set(corp)
    before = sim.clock()
    assert sim.advance(3600) - before >= 3600
    assert sim.configure(confirm_delay_seconds=None)["confirm_delay_seconds"] is None


def test_members_directory(sim, wx):
    sim.add_member("alice", "Alice")
    sim.add_member("Bob.Li", "Bob", has_customer_contact=False)
    assert wx.get("user/get", userid="ALICE")["userid"] == "alice"  # case-insensitive
    assert wx.get("user/get", userid="ghost")["errcode"] == 60111
    assert wx.get("externalcontact/get_follow_user_list")["follow_user"] == ["alice"]
    page = wx.post("user/list_id", {"limit": 1})
    assert len(page["dept_user"]) == 1 and page["next_cursor"]
    rest = wx.post("user/list_id", {"limit": 1, "cursor": page["next_cursor"]})
    assert rest["dept_user"][0]["userid"] == "Bob.Li" and rest["next_cursor"] == ""
    assert wx.post("user/convert_to_openid", {"userid": "alice"})["openid"].startswith("o")
    sim.resign("alice")
    assert wx.get("user/get", userid="alice")["errcode"] == 60111
    sent = wx.post("message/send", {"touser": "Bob.Li|ghost", "msgtype": "text", "agentid": 1,
                                    "text": {"content": "hi"}})
    assert sent["errcode"] == 0 and sent["invaliduser"] == "ghost" and sent["msgid"]


def test_concurrency_cap_on_heavy_endpoints(sim, wx):
    sim.add_member("alice")
    sim.configure(concurrency_limit=0)
    capped = wx.post("externalcontact/batch/get_by_user", {"userid_list": ["alice"]})
    assert capped["errcode"] == 45033 and capped["next_cursor"] == ""
    assert wx.get("externalcontact/get_follow_user_list")["errcode"] == 0  # not a heavy endpoint
    sim.configure(concurrency_limit=5)
    assert wx.post("externalcontact/batch/get_by_user", {"userid_list": ["alice"]})["errcode"] == 0


def test_rate_limit_per_ip_across_apis(sim, wx):
    sim.add_member("alice")
    made = sum(sim.stats()["calls"].values())  # cgi-bin calls from this IP so far (gettoken included)
    sim.configure(ip_rate_limit_per_minute=made + 2)
    assert wx.get("user/list")["errcode"] == 0
    assert wx.get("externalcontact/get_follow_user_list")["errcode"] == 0
    blocked = wx.get("user/get", userid="alice")  # a third API, each under its own per-API limit
    assert blocked["errcode"] == 45009 and ERRMSG_SHAPE.match(blocked["errmsg"])
    assert "from ip: 127.0.0.1" in blocked["errmsg"]
    assert wx.post("user/list_id", {})["errcode"] == 45009
    sim.configure(ip_rate_limit_per_minute=20000)
    assert wx.get("user/get", userid="alice")["errcode"] == 0
