"""WeChat web OAuth in the simulator over real HTTP: authorize -> code -> sns/oauth2/access_token, single use,
5 minutes on the simulated clock, WeChat's errcodes, and WeCom's unionid -> external_userid."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from django.conf import settings

APPID = settings.WECHAT_OAUTH_APPID
SECRET = settings.WECHAT_OAUTH_SECRET


@pytest.fixture
def base(sim):
    return f"{sim.base}/wecom-sim"


def _authorize(base: str, eid: str | None, *, state: str = "abc123", scope: str = "snsapi_base",
               redirect_uri: str = "https://crm.example.com/m/oauth/callback/", **extra) -> requests.Response:
    query = {"appid": APPID, "redirect_uri": redirect_uri, "response_type": "code", "scope": scope, "state": state,
             **extra}
    headers = {"X-Sim-Shopper": eid} if eid else {}
    return requests.get(f"{base}/connect/oauth2/authorize?{urlencode(query)}#wechat_redirect", headers=headers,
                        allow_redirects=False, timeout=10)


def _code(base: str, eid: str, **kw) -> str:
    response = _authorize(base, eid, **kw)
    assert response.status_code == 302, response.text[:300]
    return parse_qs(urlsplit(response.headers["Location"]).query)["code"][0]


def _exchange(base: str, code: str, secret: str = SECRET, **extra) -> dict:
    params = {"appid": APPID, "secret": secret, "code": code, "grant_type": "authorization_code", **extra}
    response = requests.get(f"{base}/sns/oauth2/access_token", params=params, timeout=10)
    assert response.status_code == 200
    return response.json()


def _befriended(sim, wx, name: str = "Lin") -> str:
    sim.add_member("alice")
    way = wx.post("externalcontact/add_contact_way", {"type": 1, "scene": 2, "user": ["alice"], "state": "o",
                                                      "skip_verify": True})
    eid = sim.add_shopper(name)["external_userid"]
    sim.scan_contact_way(eid, config_id=way["config_id"])
    return eid


def test_authorize_redirects_with_code_and_state_then_exchange_gives_openid_and_unionid(sim, wx, base):
    eid = _befriended(sim, wx)
    response = _authorize(base, eid, state="s" * 128, redirect_uri="https://crm.example.com/cb/?x=1")
    assert response.status_code == 302
    target = urlsplit(response.headers["Location"])
    query = parse_qs(target.query)
    assert (target.netloc, target.path) == ("crm.example.com", "/cb/")
    assert query["x"] == ["1"] and query["state"] == ["s" * 128] and len(query["code"][0]) == 32
    answer = _exchange(base, query["code"][0])
    assert set(answer) == {"access_token", "expires_in", "refresh_token", "openid", "scope", "unionid"}
    assert answer["expires_in"] == 7200 and answer["scope"] == "snsapi_base"
    assert answer["openid"].startswith("o") and answer["openid"] != sim.add_shopper("Lin", external_userid=eid)[
        "openid"]  # the Official Account's openid is not the pay openid: openids are per app
    # The same shopper, the same openid and unionid every time; externalcontact/get now shows the unionid too.
    again = _exchange(base, _code(base, eid))
    assert (again["openid"], again["unionid"]) == (answer["openid"], answer["unionid"])
    contact = wx.get("externalcontact/get", external_userid=eid)["external_contact"]
    assert contact["unionid"] == answer["unionid"]
    # WeCom maps the unionid (+ openid of the same app) to the corp's external_userid.
    mapped = wx.post("externalcontact/unionid_to_external_userid",
                     {"unionid": answer["unionid"], "openid": answer["openid"]})
    assert mapped == {"errcode": 0, "errmsg": "ok", "external_userid": eid}


def test_code_is_single_use_and_valid_five_simulated_minutes(sim, wx, base):
    eid = _befriended(sim, wx)
    code = _code(base, eid)
    assert "openid" in _exchange(base, code)
    used = _exchange(base, code)
    assert used["errcode"] == 40163 and used["errmsg"].startswith("code been used, rid: ")
    fresh = _code(base, eid)
    sim.advance(299)
    assert "openid" in _exchange(base, fresh)  # 4'59": still valid
    stale = _code(base, eid)
    sim.advance(301)
    expired = _exchange(base, stale)
    assert expired["errcode"] == 40029 and "invalid code" in expired["errmsg"]
    assert _exchange(base, "not-a-code")["errcode"] == 40029


def test_exchange_errcodes(sim, wx, base):
    eid = _befriended(sim, wx)
    code = _code(base, eid)
    assert _exchange(base, code, secret="wrong")["errcode"] == 40125
    assert _exchange(base, code, secret="")["errcode"] == 41004
    assert _exchange(base, code, grant_type="client_credential")["errcode"] == 40002
    assert _exchange(base, "")["errcode"] == 41008
    params = {"appid": "wxnope", "secret": SECRET, "code": code, "grant_type": "authorization_code"}
    bad_app = requests.get(f"{base}/sns/oauth2/access_token", params=params, timeout=10).json()
    assert bad_app["errcode"] == 40013
    assert requests.get(f"{base}/sns/oauth2/access_token", timeout=10).json()["errcode"] == 41002
    # None of the refused calls used the code up.
    assert "openid" in _exchange(base, code)


def test_authorize_refuses_bad_parameters_with_a_wechat_error_page(sim, wx, base):
    eid = _befriended(sim, wx)
    assert _authorize(base, eid, scope="snsapi_login").status_code == 400
    assert "10005" in _authorize(base, eid, scope="snsapi_login").text
    assert "10011" in _authorize(base, eid, redirect_uri="").text
    assert _authorize(base, eid, state="has-dash").status_code == 400  # a-zA-Z0-9 only
    assert _authorize(base, eid, state="s" * 129).status_code == 400
    assert _authorize(base, eid, response_type="token").status_code == 400
    assert "10012" in _authorize(base, eid, appid="").text


def test_without_a_wechat_client_authorize_asks_which_shopper_and_remembers_the_choice(sim, wx, base):
    eid = _befriended(sim, wx, name="Picky")
    page = _authorize(base, None)
    assert page.status_code == 200 and f'data-eid="{eid}"' in page.text and "Picky" in page.text
    browser = requests.Session()
    query = {"appid": APPID, "redirect_uri": "https://crm.example.com/cb/", "response_type": "code",
             "scope": "snsapi_base", "state": "x1", "sim_shopper": eid}
    picked = browser.get(f"{base}/connect/oauth2/authorize", params=query, allow_redirects=False, timeout=10)
    assert picked.status_code == 302 and "code=" in picked.headers["Location"]
    assert browser.cookies.get("wxsim_shopper") == eid
    query.pop("sim_shopper")
    again = browser.get(f"{base}/connect/oauth2/authorize", params=query, allow_redirects=False, timeout=10)
    assert again.status_code == 302  # the cookie says who is inside WeChat now
    # The wechat_client endpoint sets the same cookie for a browser test, then opens the page.
    other = requests.Session()
    opened = other.get(f"{base}/oauth/wechat_client", params={"shopper": eid, "next": "/healthz"}, timeout=10)
    assert opened.url.endswith("/healthz") and other.cookies.get("wxsim_shopper") == eid
    assert other.get(f"{base}/oauth/wechat_client", params={"shopper": "wmnobody"}, timeout=10).status_code == 400


def test_unionid_to_external_userid_refuses_strangers_and_mismatched_openids(sim, wx, base):
    friend = _befriended(sim, wx)
    stranger = sim.add_shopper("Stranger")["external_userid"]
    answer = _exchange(base, _code(base, stranger))  # any WeChat user can sign in to the Official Account...
    refused = wx.post("externalcontact/unionid_to_external_userid",
                      {"unionid": answer["unionid"], "openid": answer["openid"]})
    assert refused["errcode"] == 84061 and refused["external_userid"] == ""  # ...but is no contact of the corp
    mine = _exchange(base, _code(base, friend))
    assert wx.post("externalcontact/unionid_to_external_userid",
                   {"unionid": mine["unionid"], "openid": answer["openid"]})["errcode"] == 40058
    assert wx.post("externalcontact/unionid_to_external_userid", {"unionid": mine["unionid"]})["errcode"] == 40063
    assert wx.post("externalcontact/unionid_to_external_userid",
                   {"unionid": "ounknown", "openid": "o1"})["errcode"] == 84061


def test_two_concurrent_exchanges_of_one_code_give_one_openid(sim, wx, base):
    from concurrent.futures import ThreadPoolExecutor

    eid = _befriended(sim, wx)
    for _ in range(3):
        code = _code(base, eid)
        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(lambda _: _exchange(base, code), range(6)))
        assert sum("openid" in a for a in answers) == 1, answers
        assert sorted(a.get("errcode", 0) for a in answers) == [0] + [40163] * 5
