"""Consent on the card page: per purpose, versioned with time, source and policy version, withdrawn as easily as
granted (HTML form and JSON), and a withdrawal stops behavioural collection at once."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from crm.models import ConsentRecord, ContactEvent, SourceEvent
from crm.services.consent import consent_current, consent_policy_version
from crm.services.customer_links import sign_contact
from crm.services.openness import datasources_ensure_defaults, source_ingest

pytestmark = pytest.mark.django_db


def _card(contact) -> str:
    return f"/m/card/{sign_contact(contact.pk, 'card')}/"


def _form(page: str, purpose: str) -> dict:
    """The hidden fields of the consent form for `purpose` as the page renders them."""
    form = re.search(rf'<form class="consent"[^>]*data-purpose="{purpose}".*?</form>', page, re.S).group(0)
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', form))


def test_a_new_contact_has_not_agreed_to_anything(client, tiers, make_contact):
    contact = make_contact()
    page = client.get(_card(contact), HTTP_ACCEPT_LANGUAGE="en").content.decode()  # customer pages default to Chinese
    assert page.count("Off: you have not agreed") == 2  # adding staff in WeCom granted nothing
    assert _form(page, "marketing") == {"purpose": "marketing", "policy_version": consent_policy_version(),
                                        "granted": "true"}
    assert not ConsentRecord.objects.filter(contact=contact).exists()


def test_grant_and_withdraw_on_the_card_page_are_versioned_with_time_and_source(client, tiers, make_contact):
    contact = make_contact()
    url = _card(contact)
    before = timezone.now()
    granted = client.post(f"{url}consent", _form(client.get(url).content.decode(), "marketing"))
    assert granted.status_code == 303 and granted["Location"] == f"{url}#consent"

    record = ConsentRecord.objects.get(contact=contact, purpose="marketing")
    assert (record.version, record.granted, record.source, record.policy_version) == (
        1, True, "card_page", consent_policy_version())
    assert before <= record.recorded_at <= timezone.now()
    assert consent_current(contact.pk, "marketing") and not consent_current(contact.pk, "behaviour")

    page = client.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()  # customer pages default to Chinese
    assert "On since" in page and "Turn off" in page
    assert _form(page, "marketing")["granted"] == "false"  # the same one tap withdraws
    client.post(f"{url}consent", _form(page, "marketing"))
    versions = list(ConsentRecord.objects.filter(contact=contact, purpose="marketing").order_by("version")
                    .values_list("version", "granted", "source"))
    assert versions == [(1, True, "card_page"), (2, False, "card_page")]
    assert not consent_current(contact.pk, "marketing")
    assert contact.events.filter(kind=ContactEvent.Kind.CONSENT).count() == 2  # audited on the timeline
    # Behaviour was never touched: purposes are separate.
    assert not ConsentRecord.objects.filter(contact=contact, purpose="behaviour").exists()


def test_json_state_and_changes(client, tiers, make_contact):
    contact = make_contact()
    url = f"{_card(contact)}consent"
    state = client.get(url).json()
    assert state["policy_version"] == consent_policy_version()
    assert state["consents"]["marketing"] == {"granted": False, "version": 0, "policy_version": "", "source": "",
                                              "recorded_at": None}
    body = {"purpose": "behaviour", "granted": True, "policy_version": consent_policy_version()}
    changed = client.post(url, body, content_type="application/json")
    assert changed.status_code == 200
    behaviour = changed.json()["consents"]["behaviour"]
    assert behaviour["granted"] is True and behaviour["version"] == 1 and behaviour["source"] == "card_page"
    assert changed.json()["consents"]["marketing"]["granted"] is False
    # A repeat of the state in force adds no version.
    assert client.post(url, body, content_type="application/json").json()["consents"]["behaviour"]["version"] == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"purpose": "profiling", "granted": True, "policy_version": "x"}, "purpose"),
        ({"purpose": "", "granted": True}, "purpose"),
        ({"purpose": "marketing"}, "granted"),
        ({"purpose": "marketing", "granted": "maybe"}, "granted"),
        ({"purpose": "marketing", "granted": True, "policy_version": "1999-01"}, "policy_version"),
        ({"purpose": "marketing", "granted": True}, "policy_version"),
        (["marketing"], "body"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(client, tiers, make_contact, body, field):
    contact = make_contact()
    response = client.post(f"{_card(contact)}consent", body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == field
    assert not ConsentRecord.objects.filter(contact=contact).exists()


def test_a_stale_page_cannot_grant_but_can_always_withdraw(client, tiers, make_contact):
    contact = make_contact()
    url = f"{_card(contact)}consent"
    client.post(url, {"purpose": "marketing", "granted": "true", "policy_version": consent_policy_version()})
    # The form of an old page (old policy) posted as HTML: an error page, nothing recorded.
    stale = client.post(url, {"purpose": "marketing", "granted": "true", "policy_version": "2000-01"},
                        HTTP_ACCEPT_LANGUAGE="en")
    assert stale.status_code == 400 and b"reload the page" in stale.content
    withdrawn = client.post(url, {"purpose": "marketing", "granted": "false", "policy_version": "2000-01"})
    assert withdrawn.status_code == 303 and not consent_current(contact.pk, "marketing")
    assert ConsentRecord.objects.get(contact=contact, version=2).policy_version == consent_policy_version()


def test_a_forged_or_foreign_token_is_refused(client, tiers, make_contact):
    contact = make_contact()
    data = {"purpose": "marketing", "granted": "true", "policy_version": consent_policy_version()}
    assert client.post("/m/card/not-a-token/consent", data).status_code == 403
    foreign = sign_contact(contact.pk, "rp:1")  # a red-packet link does not open the card's consent
    response = client.post(f"/m/card/{foreign}/consent", data, HTTP_ACCEPT="application/json")
    assert response.status_code == 403 and response.json()["error"]["field"] == "token"
    assert client.get(f"/m/card/{sign_contact(999999, 'card')}/consent").status_code == 404
    assert not ConsentRecord.objects.exists()


def test_withdrawing_behaviour_on_the_card_page_drops_the_next_events(client, tiers, make_contact):
    datasources_ensure_defaults()
    contact = make_contact()
    url = f"{_card(contact)}consent"
    event = {"external_userid": contact.external_userid, "kind": "view_product", "properties": {"sku": "A1"},
             "occurred_at": (timezone.now() - timedelta(minutes=1)).isoformat()}
    assert source_ingest(source_code="miniprogram", records=[{**event, "event_id": "e0"}])["stored"] == 0
    client.post(url, {"purpose": "behaviour", "granted": "true", "policy_version": consent_policy_version()})
    assert source_ingest(source_code="miniprogram", records=[{**event, "event_id": "e1"}])["stored"] == 1
    client.post(url, {"purpose": "behaviour", "granted": "false"})
    result = source_ingest(source_code="miniprogram", records=[{**event, "event_id": "e2"}])
    assert result == {"stored": 0, "dropped_without_consent": 1, "unmatched": 0}
    assert list(SourceEvent.objects.values_list("event_id", flat=True)) == ["e1"]
