"""One link for everyone, over real HTTP: a shopper opens the pool link, goes through WeChat OAuth in the simulator
(authorize -> code -> sns/oauth2/access_token -> unionid_to_external_userid) and back, is identified, and claims.
Strangers, stale, reused and forged sign-ins get a clear 4xx page; signed links keep working."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.conf import settings

from crm.models import LuckyDrawEntry, RedPacketClaim
from crm.services import campaign_runs
from crm.services import campaigns as svc
from crm.services.customer_links import card_link, draw_link, pool_link
from crm.services.redpackets import claim_url
from tests.crm.oauth.conftest import csrf_token, launched_pool, wechat_browser

pytestmark = pytest.mark.django_db(transaction=True)


def _sign_in_steps(base: str, link: str, eid: str, browser: requests.Session | None = None):
    """Walk the redirects by hand: (browser, authorize URL, callback URL with code and state)."""
    browser = browser or requests.Session()
    first = browser.get(link, allow_redirects=False, timeout=10)
    assert first.status_code == 302
    authorize = first.headers["Location"]
    assert authorize.startswith(f"{base}/wecom-sim/connect/oauth2/authorize?appid={settings.WECHAT_OAUTH_APPID}&")
    assert authorize.endswith("#wechat_redirect")
    back = requests.get(authorize.split("#")[0], headers={"X-Sim-Shopper": eid}, allow_redirects=False, timeout=10)
    assert back.status_code == 302
    callback = back.headers["Location"]
    assert callback.startswith(f"{base}/m/oauth/callback/?code=")
    return browser, authorize, callback


def test_shopper_opens_the_shared_pool_link_is_identified_and_claims(live_stack, customer):
    pool = launched_pool()
    link = pool_link(pool.id)
    assert link == f"{live_stack}/m/pool/{pool.id}/"
    browser = wechat_browser(live_stack, customer.external_userid)
    page = browser.get(link, timeout=10)
    # Through authorize and the callback, back on the page (browsers carry authorize's #wechat_redirect along).
    assert page.status_code == 200 and page.url == link + "#wechat_redirect"
    assert [urlsplit(r.url).path for r in page.history] == [
        f"/m/pool/{pool.id}/", "/wecom-sim/connect/oauth2/authorize", "/m/oauth/callback/"]
    assert f'data-contact-id="{customer.id}"' in page.text and 'lang="zh-hans"' in page.text
    assert not RedPacketClaim.objects.exists()  # looking is not claiming
    claimed = browser.post(link, data={"claim": "1", "csrfmiddlewaretoken": csrf_token(page.text)},
                           headers={"Referer": link}, timeout=10)
    assert claimed.status_code == 200 and 'data-amount-fen="300"' in claimed.text
    assert RedPacketClaim.objects.get(pool=pool).contact_id == customer.id
    # The session remembers them: no second trip through WeChat; JSON too.
    again = browser.get(link, params={"format": "json"}, allow_redirects=False, timeout=10).json()
    assert again["status"] == "already_claimed" and again["contact_id"] == customer.id


def test_the_simulators_open_link_goes_through_oauth_and_taps_claim(live_stack, sim, staff):
    first, second = befriend_pair(sim, staff)
    pool = launched_pool(count=2, budget=600)  # after they are customers: the campaign addresses them
    link = pool_link(pool.id)
    opened = sim.call("POST", f"shoppers/{first.external_userid}/open_link", url=link)
    assert opened["status"] == 200 and f'data-contact-id="{first.id}"' in opened["body"]
    # A POST straight from the message: through OAuth, back on the page, and the tap again with the CSRF token.
    answer = sim.call("POST", f"shoppers/{second.external_userid}/open_link", url=link, method="POST",
                      data={"claim": "1"})
    assert answer["status"] == 200 and 'data-amount-fen="300"' in answer["body"]
    assert list(RedPacketClaim.objects.values_list("contact_id", flat=True)) == [second.id]
    tap = sim.call("POST", f"shoppers/{first.external_userid}/open_link", url=link, method="POST",
                   data={"claim": "1"})
    assert 'data-amount-fen="300"' in tap["body"]  # the browser kept its session: claimed as the first shopper
    assert sorted(RedPacketClaim.objects.values_list("contact_id", flat=True)) == sorted([first.id, second.id])


def befriend(sim, staff, name, **kwargs):
    from tests.crm.campaigns.conftest import befriend as _befriend

    return _befriend(sim, staff, name, **kwargs)


def befriend_pair(sim, staff):
    return befriend(sim, staff, "Ann"), befriend(sim, staff, "Bo")


def test_draw_and_card_links_identify_the_visitor_too(live_stack, sim, customer):
    campaign = svc.campaign_create(name="Spin", text="Try your luck")
    draw = svc.lucky_draw_create(campaign_id=campaign.id, prizes=[{"name": "Mug", "count": 3}])
    campaign_runs.campaign_launch(campaign.id, enqueue=False)  # the customer becomes a recipient
    answer = sim.call("POST", f"shoppers/{customer.external_userid}/open_link", url=draw_link(draw.id),
                      method="POST", data={"draw": "1"})
    assert answer["status"] == 200 and 'data-status="won"' in answer["body"]
    assert LuckyDrawEntry.objects.get(draw=draw).contact_id == customer.id
    card = sim.call("POST", f"shoppers/{customer.external_userid}/open_link", url=card_link())
    assert card["status"] == 200 and card["url"].startswith(f"{live_stack}/m/card/#")
    assert 'data-refresh-url="/m/card/' in card["body"]  # the page works on the visitor's own signed token


def test_a_forwarded_link_serves_only_the_customers_the_campaign_addressed(live_stack, sim, staff):
    first, _second = befriend_pair(sim, staff)
    latecomer = befriend(sim, staff, "Cy", marketing=False)  # a customer too, whom the campaign did not address
    pool = launched_pool()
    answer = sim.call("POST", f"shoppers/{latecomer.external_userid}/open_link", url=pool_link(pool.id))
    assert answer["status"] == 403 and 'data-code="not_recipient"' in answer["body"]
    tap = sim.call("POST", f"shoppers/{latecomer.external_userid}/open_link", url=pool_link(pool.id),
                   method="POST", data={"claim": "1"})
    assert tap["status"] == 403  # and the page they got has no button to tap
    assert not RedPacketClaim.objects.exists()
    ok = sim.call("POST", f"shoppers/{first.external_userid}/open_link", url=pool_link(pool.id), method="POST",
                  data={"claim": "1"})
    assert ok["status"] == 200 and RedPacketClaim.objects.get().contact_id == first.id


def test_a_wechat_user_who_is_not_a_contact_gets_a_clear_403(live_stack, sim):
    pool = launched_pool()
    stranger = sim.shopper("Stranger")  # a WeChat user, but nobody at the corp has added them
    page = wechat_browser(live_stack, stranger).get(pool_link(pool.id), timeout=10)
    assert page.status_code == 403 and urlsplit(page.url).path == "/m/oauth/callback/"
    assert 'data-code="not_contact"' in page.text and 'lang="zh-hans"' in page.text
    english = wechat_browser(live_stack, stranger, "en-US,en").get(pool_link(pool.id), timeout=10)
    assert english.status_code == 403 and "We could not find you among our customers" in english.text
    assert not RedPacketClaim.objects.exists()


def test_a_stale_code_gets_a_clear_400_with_a_way_back(live_stack, sim, customer):
    pool = launched_pool()
    browser, _, callback = _sign_in_steps(live_stack, pool_link(pool.id), customer.external_userid)
    sim.call("POST", "clock/advance", seconds=301)  # WeChat's codes live 5 minutes
    page = browser.get(callback, headers={"Accept-Language": "en"}, timeout=10)
    assert page.status_code == 400 and 'data-code="code_invalid"' in page.text and "expired" in page.text
    assert f'href="/m/pool/{pool.id}/"' in page.text  # "Try again" starts a fresh sign-in
    assert browser.get(pool_link(pool.id), allow_redirects=False, timeout=10).status_code == 302  # not identified


def test_a_reused_code_or_a_replayed_callback_gets_a_clear_400(live_stack, sim, customer):
    pool = launched_pool()
    browser, _, callback = _sign_in_steps(live_stack, pool_link(pool.id), customer.external_userid)
    code = parse_qs(urlsplit(callback).query)["code"][0]
    # Someone else exchanged the code first (it leaked): WeChat answers 40163, the page says so.
    leaked = requests.get(f"{live_stack}/wecom-sim/sns/oauth2/access_token", timeout=10, params={
        "appid": settings.WECHAT_OAUTH_APPID, "secret": settings.WECHAT_OAUTH_SECRET, "code": code,
        "grant_type": "authorization_code"}).json()
    assert "openid" in leaked
    page = browser.get(callback, timeout=10)
    assert page.status_code == 400 and 'data-code="code_used"' in page.text
    # A successful sign-in, then its callback URL opened again (a refresh, the back button): the state is spent.
    browser, _, callback = _sign_in_steps(live_stack, pool_link(pool.id), customer.external_userid, browser)
    assert browser.get(callback, timeout=10).status_code == 200
    replay = browser.get(callback, timeout=10)
    assert replay.status_code == 400 and 'data-code="state_used"' in replay.text


def test_forged_or_foreign_states_get_a_clear_400(live_stack, customer):
    pool = launched_pool()
    browser = requests.Session()
    forged = browser.get(f"{live_stack}/m/oauth/callback/", params={"code": "x", "state": "0" * 56}, timeout=10)
    assert forged.status_code == 400 and 'data-code="state_invalid"' in forged.text
    assert browser.get(f"{live_stack}/m/oauth/callback/", timeout=10).status_code == 400
    # A genuine callback URL started in the victim's... no: in the attacker's browser, opened in another one.
    _, _, callback = _sign_in_steps(live_stack, pool_link(pool.id), customer.external_userid)
    other = requests.Session()
    foreign = other.get(callback, timeout=10)
    assert foreign.status_code == 400 and 'data-code="state_foreign"' in foreign.text
    assert other.get(pool_link(pool.id), allow_redirects=False, timeout=10).status_code == 302  # still nobody


def test_a_session_post_without_the_csrf_token_is_refused(live_stack, customer):
    pool = launched_pool()
    browser = wechat_browser(live_stack, customer.external_userid)
    assert browser.get(pool_link(pool.id), timeout=10).status_code == 200
    refused = browser.post(pool_link(pool.id), data={"claim": "1"}, timeout=10)
    assert refused.status_code == 403
    assert not RedPacketClaim.objects.exists()


def test_json_callers_without_an_identity_get_401_with_the_authorize_url(live_stack):
    pool = launched_pool()
    answer = requests.get(pool_link(pool.id), params={"format": "json"}, allow_redirects=False, timeout=10)
    assert answer.status_code == 401
    assert answer.json()["error"]["details"]["authorize_url"].startswith(f"{live_stack}/wecom-sim/connect/oauth2/")
    assert requests.get(f"{live_stack}/m/pool/999999/", timeout=10).status_code == 404


def test_wechat_down_is_a_503_page_not_a_500(live_stack, sim, customer):
    pool = launched_pool()
    sim.call("POST", "faults", path="sns/oauth2/access_token", kind="5xx")
    page = wechat_browser(live_stack, customer.external_userid).get(pool_link(pool.id), timeout=10)
    assert page.status_code == 503 and 'data-code="oauth_unavailable"' in page.text


def test_refused_callbacks_are_throttled_per_client_successes_are_not(live_stack, customer, settings):
    settings.WECHAT_OAUTH_CALLBACK_RATE_PER_MINUTE = 3
    pool = launched_pool()
    for _ in range(4):  # sign-ins that succeed never count
        browser, _, callback = _sign_in_steps(live_stack, pool_link(pool.id), customer.external_userid)
        assert browser.get(callback, timeout=10).status_code == 200
    if time.time() % 60 > 50:  # the window is the clock's minute: do not straddle two
        time.sleep(61 - time.time() % 60)
    codes = [requests.get(f"{live_stack}/m/oauth/callback/", params={"state": "bad"}, timeout=10).status_code
             for _ in range(5)]
    assert codes[:3] == [400, 400, 400] and codes[3:] == [429, 429]
    browser, _, callback = _sign_in_steps(live_stack, pool_link(pool.id), customer.external_userid)
    assert browser.get(callback, timeout=10).status_code == 429  # this client is held back for the minute


@pytest.mark.parametrize("mode", ["oauth", "signed"])
def test_signed_links_still_work_in_both_modes(live_stack, customer, settings, mode):
    settings.CUSTOMER_LINKS = mode
    pool = launched_pool()
    link = claim_url(pool.id, customer.id)
    page = requests.get(link, timeout=10)
    assert page.status_code == 200 and f'data-contact-id="{customer.id}"' in page.text
    claimed = requests.post(link, data={"claim": "1"}, timeout=10)  # the token is the credential: no CSRF
    assert 'data-amount-fen="300"' in claimed.text
    assert RedPacketClaim.objects.get(pool=pool).contact_id == customer.id


def test_two_racing_callbacks_with_one_state_sign_in_once(live_stack, customer):
    from concurrent.futures import ThreadPoolExecutor

    pool = launched_pool()
    browser, _, callback = _sign_in_steps(live_stack, pool_link(pool.id), customer.external_userid)
    cookies = browser.cookies.get_dict()

    def open_callback(_):
        return requests.get(callback, cookies=cookies, allow_redirects=False, timeout=10).status_code

    with ThreadPoolExecutor(4) as ex:
        codes = sorted(ex.map(open_callback, range(4)))
    assert codes == [302, 400, 400, 400]


def test_an_old_identity_is_asked_again_silently(live_stack, customer):
    from importlib import import_module

    pool = launched_pool()
    browser = wechat_browser(live_stack, customer.external_userid)
    assert browser.get(pool_link(pool.id), timeout=10).status_code == 200
    assert browser.get(pool_link(pool.id), allow_redirects=False, timeout=10).status_code == 200
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key=browser.cookies["sessionid"])
    identity = store["wx_identity"]
    identity["redpacket"]["at"] -= settings.WECHAT_OAUTH_IDENTITY_MAX_AGE + 1
    store["wx_identity"] = identity
    store.save()
    assert browser.get(pool_link(pool.id), allow_redirects=False, timeout=10).status_code == 302  # to WeChat
    page = browser.get(pool_link(pool.id), timeout=10)
    assert page.status_code == 200 and f'data-contact-id="{customer.id}"' in page.text
