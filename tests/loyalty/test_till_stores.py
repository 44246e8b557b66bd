"""A till is bound to its store(s): a scan or a redemption at another store is refused with 403 naming `store`, and
nothing is written; admins (loyalty.all_stores) may use any store."""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from loyalty.models import PointsLedger, Purchase, Redemption, Reward
from loyalty.qr import qr_token_mint
from loyalty.services import cashier_ensure, points_credit, store_upsert
from loyalty.services.store_staff import store_members_set

pytestmark = pytest.mark.django_db
SCANS, REDEMPTIONS = "/api/loyalty/scans", "/api/loyalty/redemptions"


@pytest.fixture
def beijing(db):
    return store_upsert(code="store-bj-002", name="Beijing Sanlitun")


def _scan(client, card, store, receipt="R-1"):
    body = {"qr_token": qr_token_mint(card.number).token, "receipt_id": receipt, "store": store.code,
            "amount_fen": 10_000}
    return client.post(SCANS, body, format="json")


def test_scan_at_another_store_is_403_naming_the_store_and_writes_nothing(cashier_client, card, store, beijing):
    refused = _scan(cashier_client, card, beijing)
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == "store_forbidden" and error["field"] == "store"
    assert "store-bj-002" in error["message"] and "store-sh-001" in error["message"]  # where it is, where it may
    assert not Purchase.objects.exists() and not PointsLedger.objects.exists()
    assert _scan(cashier_client, card, store).status_code == 201


def test_the_other_store_may_not_replay_this_stores_receipt(cashier_client, card, store, beijing, django_user_model):
    assert _scan(cashier_client, card, store).status_code == 201
    _, key = cashier_ensure(username="till-bj", store_codes=[beijing.code])
    other_till = APIClient()
    other_till.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert _scan(other_till, card, store).status_code == 403  # not even the duplicate answer
    assert _scan(other_till, card, beijing, receipt="R-1").status_code == 201  # its own receipts are its own


def test_a_till_bound_to_no_store_scans_nowhere(card, store):
    _, key = cashier_ensure(username="till-new")
    till = APIClient()
    till.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    refused = _scan(till, card, store)
    assert refused.status_code == 403 and "your store(s): none" in refused.json()["error"]["message"]


def test_rebinding_moves_the_till(cashier, cashier_client, card, store, beijing):
    store_members_set(cashier, [beijing.code])
    assert _scan(cashier_client, card, store).status_code == 403
    assert _scan(cashier_client, card, beijing).status_code == 201


def test_an_admin_may_scan_at_any_store(admin_client_api, card, beijing):
    assert _scan(admin_client_api, card, beijing).status_code == 201


def test_redemption_at_another_store_is_refused_and_a_bound_till_names_its_store(cashier_client, card, store,
                                                                                  beijing):
    points_credit(card_id=card.pk, delta=1000, kind="earn", idempotency_key="gift", reason="test")
    reward = Reward.objects.create(name="Tea tasting", points_cost=300)
    body = {"qr_token": qr_token_mint(card.number).token, "reward": reward.pk, "idempotency_key": "r-1"}
    other = cashier_client.post(REDEMPTIONS, {**body, "store": beijing.code}, format="json")
    assert other.status_code == 403 and other.json()["error"]["field"] == "store"
    unnamed = cashier_client.post(REDEMPTIONS, body, format="json")
    assert unnamed.status_code == 400 and unnamed.json()["error"]["field"] == "store"
    assert not Redemption.objects.exists()
    mine = cashier_client.post(REDEMPTIONS, {**body, "store": store.code}, format="json")
    assert mine.status_code == 201 and Redemption.objects.get().store == store


def test_a_cashier_has_no_console(client, cashier):
    client.force_login(cashier)
    response = client.get("/admin/loyalty/purchase/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert not cashier.is_staff and Token.objects.filter(user=cashier).count() <= 1


def test_unknown_store_codes_are_refused_when_binding(cashier):
    from crm.errors import ApplicationError

    with pytest.raises(ApplicationError) as refused:
        store_members_set(cashier, ["nowhere"])
    assert refused.value.field == "stores"
    with pytest.raises(ApplicationError):
        cashier_ensure(username="till-x", store_codes=["nowhere"])
