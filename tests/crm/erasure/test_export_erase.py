"""Export and erase of one person across the CRM, loyalty and Redis: one JSON document with a schema_version; an
erase that keeps (anonymised) what money and audit need, deletes the rest, leaves a tombstone and is audited.
Over the staff API, as the console and integrations use it."""

from __future__ import annotations

import pytest
from auditlog.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.cache import cache
from rest_framework.test import APIClient

from crm.models import (
    ConsentRecord,
    Contact,
    ContactEvent,
    ContactTag,
    ErasureTombstone,
    FollowRelation,
    RedPacketClaim,
)
from crm.services import redpackets as rp
from crm.services.contacts import contact_set_phone, phone_hash
from crm.services.erasure import external_userid_hash
from crm.services.roles import ADMIN, MARKETING
from crm.services.tags import tag_ensure
from loyalty.models import Card, Coupon, PointsLedger, Purchase, Reward
from loyalty.qr import qr_token_consume, qr_token_mint, qr_token_parse
from loyalty.services import card_get_or_create, store_upsert, tiers_ensure_defaults
from loyalty.services.coupons import coupon_grant
from loyalty.services.scans import scan_record
from tests.crm.campaigns.conftest import later, make_contact, make_staff

pytestmark = pytest.mark.django_db(transaction=True)


def _user(name: str, role: str):
    user = get_user_model().objects.create_user(name, password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client = APIClient()
    client.force_login(user)
    return user, client


@pytest.fixture
def person(redis_client):
    """A customer with everything the CRM and loyalty hold: relation, tag, consent, phone, card, a receipt with
    lines, points, a coupon, a red-packet claim, and Redis keys of their own."""
    staff = make_staff("ann")
    mei = make_contact(staff, eid="wmMEI0001", name="Han Meimei")  # marketing consent granted
    contact_set_phone(mei, "13800138000")
    FollowRelation.objects.filter(contact=mei).update(remark="Mei from Jing'an")
    ContactTag.objects.create(contact=mei, tag=tag_ensure("Tier", "Gold"))
    tiers_ensure_defaults()
    store = store_upsert(code="store-sh-001", name="Jing'an")
    card = card_get_or_create(mei.pk)
    scan_record(qr_token=qr_token_mint(card.number).token, store_code=store.code, receipt_id="R-1", amount_fen=12800,
                items=[{"sku": "TEA-1", "name": "Oolong", "qty": 2, "amount_fen": 12800}])
    reward = Reward.objects.create(name="Free tea", kind=Reward.Kind.COUPON, points_cost=10)
    coupon_grant(reward_id=reward.pk, idempotency_key=f"console:test:{mei.pk}", source=Coupon.Source.CONSOLE,
                 contact_id=mei.pk)
    pool = rp.redpacket_pool_activate(rp.redpacket_pool_create(
        campaign_id=None, budget_fen=1000, count=2, mode="fixed", expires_at=later(hours=1)).id)
    assert rp.redpacket_claim(pool_id=pool.id, contact_id=mei.pk).status == "claimed"
    # Redis keys of theirs: a used QR nonce, the till's per-card and the claim's per-visitor throttle windows.
    qr_token_consume(qr_token_parse(qr_token_mint(card.number).token), "store-sh-001:R-2")
    redis_client.zadd(cache.make_key(f"throttle_loyalty_card_{card.number}:window"), {"1": 1})
    redis_client.zadd(cache.make_key(f"throttle_redpacket_claim_visitor_{mei.pk}:window"), {"1": 1})
    return mei, card.number, pool


def test_export_is_one_document_with_everything_and_is_audited(person):
    mei, number, _pool = person
    admin, client = _user("dpo", ADMIN)
    response = client.get(f"/api/contacts/{mei.pk}/export/", {"reason": "access request #12"})
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="contact-{mei.pk}-export.json"'
    doc = response.json()
    assert doc["schema_version"] == 1 and doc["exported_by"] == "dpo"
    assert doc["contact"]["name"] == "Han Meimei" and doc["contact"]["phone"] == "13800138000"
    assert doc["follows"][0]["remark"] == "Mei from Jing'an" and doc["follows"][0]["staff__userid"] == "ann"
    assert doc["tags"] == [{"group": "Tier", "tag": "Gold", "added_at": doc["tags"][0]["added_at"]}]
    assert [c["purpose"] for c in doc["consents"]] == ["marketing"]
    assert doc["red_packet_claims"][0]["amount_fen"] == 500 and doc["red_packet_claims"][0]["billno"]
    assert doc["timeline"] and {e["kind"] for e in doc["timeline"]} >= {"consent"}
    loyalty = doc["loyalty"]
    assert loyalty["card"]["number"] == number and loyalty["card"]["points_balance"] > 0
    assert loyalty["purchases"] == [{"store": "store-sh-001", "receipt_id": "R-1", "amount_fen": 12800,
                                     "points": loyalty["purchases"][0]["points"],
                                     "scanned_at": loyalty["purchases"][0]["scanned_at"],
                                     "lines": [{"sku": "TEA-1", "name": "Oolong", "qty": 2, "amount_fen": 12800,
                                                "points": loyalty["purchases"][0]["lines"][0]["points"]}]}]
    assert sum(row["delta"] for row in loyalty["points_ledger"]) == loyalty["card"]["points_balance"]
    assert [c["reward__name"] for c in loyalty["coupons"]] == ["Free tea"]
    keys = {k["key"] for k in doc["redis_keys"]}
    assert cache.make_key(f"throttle_loyalty_card_{number}:window") in keys
    assert cache.make_key(f"throttle_redpacket_claim_visitor_{mei.pk}:window") in keys
    assert any(k.startswith(cache.make_key(f"loyalty:qr-nonce:{number}:")) for k in keys)
    for section in ("campaign_recipients", "group_draw_entries", "lucky_draw_entries", "groups", "source_orders"):
        assert doc[section] == []
    # Audited: the audit log says who, why; the timeline has the export.
    entry = LogEntry.objects.get(object_pk=str(mei.pk), additional_data__data_rights="export")
    assert entry.actor == admin and entry.additional_data["reason"] == "access request #12"
    assert mei.events.filter(kind=ContactEvent.Kind.DATA_RIGHTS, data__action="export").exists()


def test_erase_keeps_money_and_audit_deletes_the_rest(person, redis_client):
    mei, number, pool = person
    admin, client = _user("dpo", ADMIN)
    ledger_before = list(PointsLedger.objects.filter(card__contact=mei).values_list("id", "delta"))
    response = client.post(f"/api/contacts/{mei.pk}/erase/", {"reason": "customer request by phone, ticket 881"},
                           format="json")
    assert response.status_code == 200, response.content
    summary = response.json()["summary"]
    assert summary["claims_cancelled"] == 1 and summary["follows_deleted"] == 1 and summary["tags_deleted"] == 1
    assert summary["loyalty"]["points_forfeited"] > 0 and summary["redis_keys_deleted"] >= 3

    mei.refresh_from_db()
    assert (mei.name, mei.unionid, mei.avatar, mei.phone_hash, mei.phone_encrypted) == ("", "", "", "", "")
    assert mei.external_userid == f"erased-{mei.pk}" and mei.erased_at is not None
    assert not FollowRelation.objects.filter(contact=mei).exists()
    assert not ContactTag.objects.filter(contact=mei).exists()
    assert not ConsentRecord.objects.filter(contact=mei).exists()
    # The timeline keeps only the data-rights rows (the erase is what the sender checks before each send).
    assert set(mei.events.values_list("kind", flat=True)) == {ContactEvent.Kind.DATA_RIGHTS}
    # Money: the claim keeps its amount and bill number, is refunded to the pool, loses the openid.
    claim = RedPacketClaim.objects.get(contact=mei)
    assert (claim.amount_fen, claim.status, claim.openid) == (500, "expired", "") and claim.billno
    assert rp.redpacket_reconcile(pool.id)["balanced"]
    # Loyalty: every ledger row stays, one forfeits the balance; the receipt and its lines stay; the card's
    # printed number is gone; the coupon is void.
    card = Card.objects.get(contact=mei)
    assert card.number != number and card.points_balance == 0
    rows = list(PointsLedger.objects.filter(card=card).order_by("id").values_list("id", "delta"))
    assert rows[: len(ledger_before)] == sorted(ledger_before) and len(rows) == len(ledger_before) + 1
    assert sum(d for _i, d in rows) == 0
    purchase = Purchase.objects.get(card=card)
    assert purchase.amount_fen == 12800 and purchase.lines.get().sku == "TEA-1"
    assert Coupon.objects.get(card=card).expires_at is not None
    # Redis: none of the person's keys are left.
    assert not list(redis_client.scan_iter(match=cache.make_key(f"loyalty:qr-nonce:{number}:*")))
    assert not redis_client.exists(cache.make_key(f"throttle_loyalty_card_{number}:window"))
    assert not redis_client.exists(cache.make_key(f"throttle_redpacket_claim_visitor_{mei.pk}:window"))
    # The tombstone, keyed by hashes, and the audit entry with the reason.
    tomb = ErasureTombstone.objects.get(contact=mei)
    assert tomb.external_userid_hash == external_userid_hash("wmMEI0001") and "wmMEI0001" not in str(tomb.__dict__)
    assert tomb.phone_hash == phone_hash("13800138000") and tomb.erased_by == admin and "881" in tomb.reason
    entry = LogEntry.objects.get(object_pk=str(mei.pk), additional_data__data_rights="erase")
    assert entry.actor == admin and "881" in entry.additional_data["reason"] and "Han" not in entry.object_repr
    # The export of an erased person holds nothing personal.
    doc = client.get(f"/api/contacts/{mei.pk}/export/").json()
    assert doc["contact"]["name"] == "" and doc["contact"]["phone"] == "" and doc["follows"] == []
    assert doc["loyalty"]["card"]["number"] == card.number
    # Their old links and sessions lead nowhere: no card, no claim, no new consent.
    with pytest.raises(Exception) as err:
        card_get_or_create(mei.pk)
    assert err.value.status_code == 404
    assert client.post(f"/api/contacts/{mei.pk}/erase/", {"reason": "again"}, format="json").status_code == 409


def test_erase_refuses_bad_input_naming_the_field_and_other_roles(person):
    mei, _number, _pool = person
    _admin, client = _user("dpo", ADMIN)
    for body in ({}, {"reason": ""}, {"reason": "   "}, {"reason": "x" * 2001}, {"reason": ["a"]}):
        response = client.post(f"/api/contacts/{mei.pk}/erase/", body, format="json")
        assert response.status_code == 400, (body, response.content)
        assert response.json()["error"]["field"] == "reason"
    assert client.post("/api/contacts/999999/erase/", {"reason": "x"}, format="json").status_code == 404
    assert client.post(f"/api/contacts/{2**70}/erase/", {"reason": "x"}, format="json").status_code == 404
    assert client.post(f"/api/contacts/{mei.pk}/erase/", "not an object", format="json").status_code == 400
    assert client.get("/api/contacts/999999/export/").status_code == 404
    assert client.get(f"/api/contacts/{mei.pk}/export/", {"reason": "x" * 2001}).json()["error"]["field"] == "reason"
    _marketer, marketing = _user("mkt", MARKETING)
    assert marketing.post(f"/api/contacts/{mei.pk}/erase/", {"reason": "x"}, format="json").status_code == 403
    Contact.objects.get(pk=mei.pk)  # untouched
    assert not ErasureTombstone.objects.exists()


def test_both_endpoints_are_in_the_openapi_schema(person):
    _admin, client = _user("dpo", ADMIN)
    schema = client.get("/api/schema/", {"format": "json"}).json()
    erase = schema["paths"]["/api/contacts/{contact_id}/erase/"]["post"]
    assert erase["requestBody"]["required"] and "EraseInput" in str(erase["requestBody"])
    assert schema["components"]["schemas"]["EraseInput"]["required"] == ["reason"]
    assert "summary" in schema["components"]["schemas"]["EraseOutput"]["properties"]
    assert "reason" in str(schema["paths"]["/api/contacts/{contact_id}/export/"]["get"]["parameters"])


def test_erase_takes_them_out_of_draws_not_drawn_and_fulfils_no_prize_of_theirs():
    from datetime import timedelta

    from django.utils import timezone

    from crm.models import GroupDraw, GroupDrawEntry, GroupDrawPrize, GroupDrawWinner
    from crm.services.draws import draw_fulfil
    from crm.services.erasure import contact_erase

    mei = make_contact(make_staff("ann"), eid="wmDRAW0001")
    now = timezone.now()
    still_open = GroupDraw.objects.create(name="Open", opens_at=now, closes_at=later(hours=1), status="open")
    revealed = GroupDraw.objects.create(name="Drawn", opens_at=now - timedelta(hours=2),
                                        closes_at=now - timedelta(hours=1), status="revealed")
    GroupDrawEntry.objects.create(draw=still_open, contact=mei, external_userid=mei.external_userid)
    won = GroupDrawEntry.objects.create(draw=revealed, contact=mei, external_userid=mei.external_userid)
    prize = GroupDrawPrize.objects.create(draw=revealed, position=1, kind="points", points=10)
    winner = GroupDrawWinner.objects.create(draw=revealed, entry=won, prize=prize, rank=0, idempotency_key="d-1-0")

    summary = contact_erase(mei.pk, actor="dpo", reason="customer request")["summary"]
    assert summary["draw_entries_deleted"] == 1 and summary["draw_prizes_cancelled"] == 1
    assert not GroupDrawEntry.objects.filter(draw=still_open).exists()
    won.refresh_from_db()
    assert won.external_userid == "wmDRAW0001"  # a revealed draw's published proof sorts by it
    # A later fulfilment run (they are retried until fulfilled) gives the erased person nothing.
    assert draw_fulfil(revealed.pk) == {"contact_erased": 1}
    winner.refresh_from_db()
    assert (winner.status, winner.reason, winner.fulfilled_ref) == ("failed", "contact_erased", "")


def test_console_actions_follow_the_roles(client):
    mei = make_contact(make_staff("ann"), eid="wmCONSOLE01", name="Han Meimei")
    marketer = get_user_model().objects.create_user("mkt", password="pw", is_staff=True)
    marketer.groups.add(Group.objects.get(name=MARKETING))
    client.force_login(marketer)
    page = client.get(f"/admin/console/contacts/{mei.pk}/").content.decode()
    assert 'data-testid="contact-export"' in page and 'data-testid="contact-erase"' not in page
    download = client.get(f"/admin/console/contacts/{mei.pk}/export.json")
    assert download.status_code == 200 and download["Content-Disposition"].startswith("attachment")
    assert download.json()["contact"]["name"] == "Han Meimei"
    assert client.get(f"/admin/console/contacts/{mei.pk}/erase/").status_code == 403
    assert client.post(f"/admin/console/contacts/{mei.pk}/erase/", {"reason": "x", "confirm": "on"}).status_code == 403

    admin = get_user_model().objects.create_user("dpo", password="pw", is_staff=True)
    admin.groups.add(Group.objects.get(name=ADMIN))
    client.force_login(admin)
    refused = client.post(f"/admin/console/contacts/{mei.pk}/erase/", {"reason": "customer request"})
    assert refused.status_code == 200 and 'data-field="confirm"' in refused.content.decode()
    done = client.post(f"/admin/console/contacts/{mei.pk}/erase/", {"reason": "customer request", "confirm": "on"})
    assert done.status_code == 302 and Contact.objects.get(pk=mei.pk).erased_at is not None
    again = client.get(f"/admin/console/contacts/{mei.pk}/erase/")
    assert again.status_code == 302  # already erased: back to the page, which says so
    assert 'data-testid="contact-erased"' in client.get(again["Location"]).content.decode()


def test_the_claim_servers_group_path_refuses_an_erased_persons_old_link(redis_client):
    from crm.services.claim_batches import ClaimRequest, claims_take
    from crm.services.erasure import contact_erase

    staff = make_staff("ann")
    erased, live = make_contact(staff, eid="wmGROUP001"), make_contact(staff, eid="wmGROUP002")
    pool = rp.redpacket_pool_activate(rp.redpacket_pool_create(
        campaign_id=None, budget_fen=1000, count=2, mode="fixed", expires_at=later(hours=1)).id)
    contact_erase(erased.pk, actor="dpo", reason="customer request")
    answers = claims_take([ClaimRequest(pool.id, erased.pk, ()), ClaimRequest(pool.id, live.pk, ())])
    assert [a.status for a in answers] == ["not_found", "claimed"]
    assert redis_client.hget(rp.pool_keys(pool.id)[1], str(erased.pk)) is None  # nothing reserved for them
    assert not RedPacketClaim.objects.filter(contact=erased).exists()
    report = rp.redpacket_reconcile(pool.id)
    assert report["balanced"] and report["claimable_fen"] == 500
