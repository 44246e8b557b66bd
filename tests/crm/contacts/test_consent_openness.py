"""Consent (per purpose, versioned), data rights, and the openness grain enforced on ingestion."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile

from crm.models import Contact, FollowRelation, Staff
from crm.models.consent import ConsentRecord, SourceAggregate, SourceEvent, SourceOrderLine
from crm.models.contacts import ContactEvent
from crm.services.consent import consent_current, consent_record, contacts_consenting
from crm.services.contacts import contact_set_phone
from crm.services.openness import datasources_ensure_defaults

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(client):
    client.force_login(get_user_model().objects.create_superuser("admin", password="pw"))
    datasources_ensure_defaults()
    return client


@pytest.fixture
def mei():
    contact = Contact.objects.create(external_userid="wmMEI", name="Mei")
    contact_set_phone(contact, "13800138000")
    FollowRelation.objects.create(staff=Staff.objects.create(userid="alice"), contact=contact, remark="VIP-ish")
    return contact


def test_consent_is_versioned_and_latest_wins(mei):
    first = consent_record(contact_id=mei.id, purpose="marketing", granted=True, source="card_page",
                           policy_version="2026-01")
    assert first.version == 1 and consent_current(mei.id, "marketing")
    assert consent_record(contact_id=mei.id, purpose="marketing", granted=True, source="card_page",
                          policy_version="2026-01") == first  # repeat: no new version
    withdrawn = consent_record(contact_id=mei.id, purpose="marketing", granted=False, source="wecom")
    assert withdrawn.version == 2 and not consent_current(mei.id, "marketing")
    assert not contacts_consenting("marketing").exists()
    assert ConsentRecord.objects.filter(contact=mei).count() == 2  # history kept
    assert mei.events.filter(kind=ContactEvent.Kind.CONSENT).count() == 2


def test_consent_api_validates(api, mei):
    bad = api.post(f"/api/contacts/{mei.id}/consent/", {"purpose": "spam", "granted": True, "source": "x"},
                   content_type="application/json")
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "purpose"
    ok = api.post(f"/api/contacts/{mei.id}/consent/", {"purpose": "behaviour", "granted": True, "source": "x"},
                  content_type="application/json")
    assert ok.status_code == 201 and ok.json()["version"] == 1
    assert api.post("/api/contacts/999/consent/", {"purpose": "behaviour", "granted": True, "source": "x"},
                    content_type="application/json").status_code == 404


def _ingest(api, source, records):
    return api.post(f"/api/sources/{source}/ingest/", {"records": records}, content_type="application/json")


def test_open_source_keeps_events_only_with_consent(api, mei):
    event = {"event_id": "e1", "external_userid": "wmMEI", "kind": "view_product", "occurred_at":
             "2026-11-11T20:00:00+08:00", "properties": {"sku": "A1"}}
    response = _ingest(api, "miniprogram", [event])
    assert response.json()["stored"] == 0 and response.json()["dropped_without_consent"] == 1
    consent_record(contact_id=mei.id, purpose="behaviour", granted=True, source="miniprogram")
    assert _ingest(api, "miniprogram", [event]).json()["stored"] == 1
    consent_record(contact_id=mei.id, purpose="behaviour", granted=False, source="miniprogram")
    assert _ingest(api, "miniprogram", [{**event, "event_id": "e2"}]).json()["stored"] == 0  # withdrawal stops it
    assert SourceEvent.objects.count() == 1


def test_semi_open_matches_by_phone_and_refuses_identity_fields(api, mei):
    line = {"order_id": "T100", "phone": "+86 138 0013 8000", "sku": "A1", "amount_fen": 12900,
            "ordered_at": "2026-11-11T00:10:00+08:00"}
    response = _ingest(api, "tmall", [line, {**line, "order_id": "T101", "phone": "13900000000"}])
    assert response.status_code == 200 and response.json() == {"stored": 2, "dropped_without_consent": 0,
                                                                "unmatched": 1}
    assert SourceOrderLine.objects.get(order_id="T100").contact == mei
    refused = _ingest(api, "jd", [{**line, "order_id": "J1"}, {**line, "order_id": "J2", "name": "Mei"}])
    assert refused.status_code == 400
    assert refused.json()["error"]["field"] == "records[1].name"
    assert refused.json()["error"]["code"] == "refused_by_openness"
    assert not SourceOrderLine.objects.filter(source__code="jd").exists()  # nothing of the batch written


def test_closed_source_takes_aggregates_only(api, mei):
    agg = {"day": "2026-11-11", "metric": "followers", "bucket": "female_25_34", "value": 1200}
    assert _ingest(api, "douyin", [agg]).json()["stored"] == 1
    assert _ingest(api, "douyin", [{**agg, "value": 1300}]).json()["stored"] == 1  # a day's value is replaced
    assert SourceAggregate.objects.get().value == 1300
    refused = _ingest(api, "weibo", [{**agg, "external_userid": "wmMEI"}])
    assert refused.status_code == 400 and refused.json()["error"]["field"] == "records[0].external_userid"
    bad_value = _ingest(api, "weibo", [agg, {**agg, "metric": "views", "value": "lots"}])
    assert bad_value.status_code == 400 and bad_value.json()["error"]["field"] == "records[1].value"
    assert not SourceAggregate.objects.filter(source__code="weibo").exists()


def test_csv_import_checks_header_and_rows(api, mei):
    good = "order_id,phone,sku,amount_fen,ordered_at\nT1,13800138000,A1,100,2026-11-11T00:00:00+08:00\n"
    response = api.post("/api/sources/tmall/import/", {"file": SimpleUploadedFile("o.csv", good.encode())})
    assert response.status_code == 200 and response.json()["stored"] == 1
    header = "order_id,phone,sku,amount_fen,ordered_at,nickname\nT2,1380,A1,1,2026-11-11T00:00:00Z,x\n"
    refused = api.post("/api/sources/tmall/import/", {"file": SimpleUploadedFile("o.csv", header.encode())})
    assert refused.status_code == 400 and refused.json()["error"]["field"] == "nickname"
    late_bad = good + "T3,13800138000,A1,notmoney,2026-11-11T00:00:00+08:00\n"
    late_bad = late_bad.replace("T1,", "T9,", 1)
    refused = api.post("/api/sources/tmall/import/", {"file": SimpleUploadedFile("o.csv", late_bad.encode())})
    assert refused.status_code == 400 and refused.json()["error"]["field"] == "line 3.amount_fen"
    assert not SourceOrderLine.objects.filter(order_id__in=["T9", "T3"]).exists()
    assert _ingest(api, "nowhere", [{"x": 1}]).status_code == 404


def test_export_and_erase(api, mei):
    consent_record(contact_id=mei.id, purpose="marketing", granted=True, source="card_page")
    export = api.get(f"/api/contacts/{mei.id}/export/").json()
    assert export["contact"]["phone"] == "13800138000" and export["follows"][0]["remark"] == "VIP-ish"
    assert export["consents"][0]["purpose"] == "marketing"
    assert export["schema_version"] == 1
    erased = api.post(f"/api/contacts/{mei.id}/erase/", {"reason": "customer request"},
                      content_type="application/json").json()
    assert erased["contact_id"] == mei.id
    mei.refresh_from_db()
    assert mei.name == "" and mei.phone_hash == "" and mei.phone_encrypted == "" and mei.erased_at is not None
    assert not FollowRelation.objects.filter(contact=mei).exists()  # the relation goes with the person
    audit = list(mei.events.filter(kind=ContactEvent.Kind.DATA_RIGHTS).values_list("data__action", flat=True))
    assert sorted(audit) == ["erase", "export"]
