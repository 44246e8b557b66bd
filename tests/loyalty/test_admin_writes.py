"""Tiers, stores and rewards are written in the console through loyalty's services: a bad value is the field's
error inline with nothing written (never a constraint's name), a refused delete says why, and what is saved is
what the service saved."""

from __future__ import annotations

import pytest
from django.urls import reverse

from crm.errors import ApplicationError
from crm.models import Contact
from loyalty.models import Card, Purchase, Redemption, Reward, Store, Tier
from loyalty.services import (
    card_get_or_create,
    points_adjust,
    redemption_create,
    reward_delete,
    store_upsert,
    tier_delete,
    tier_save,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def root_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", password="pw"))
    return client


def _errors(response) -> dict[str, list[str]]:
    assert response.status_code == 200, response.status_code  # the form again, not a redirect or a 500
    form = response.context["adminform"].form
    return {field: [str(e) for e in errors] for field, errors in form.errors.items()}


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def _ladder():
    for rank, (name, points) in enumerate((("Member", 0), ("Silver", 1000), ("Gold", 5000)), start=1):
        tier_save(name=name, min_points=points, rank=rank, is_vip=name == "Gold")


def test_a_tier_is_added_and_changed_through_the_service(root_client):
    _ladder()
    response = root_client.post(reverse("admin:loyalty_tier_add"),
                                {"name": " Platinum ", "rank": 4, "min_points": 20000, "is_vip": "on"})
    assert response.status_code == 302
    platinum = Tier.objects.get(rank=4)
    assert (platinum.name, platinum.min_points, platinum.is_vip) == ("Platinum", 20000, True)  # name trimmed
    response = root_client.post(reverse("admin:loyalty_tier_change", args=[platinum.pk]),
                                {"name": "Platinum", "rank": 4, "min_points": 25000, "is_vip": "on"})
    assert response.status_code == 302
    assert Tier.objects.get(pk=platinum.pk).min_points == 25000


@pytest.mark.parametrize(("fields", "field", "words"), [
    ({"name": "Gold", "rank": 4, "min_points": 9000}, "name", "already exists"),
    ({"name": "Ruby", "rank": 2, "min_points": 9000}, "rank", "rank 2"),
    ({"name": "Ruby", "rank": 4, "min_points": 5000}, "min_points", "5000 points"),
    ({"name": "Ruby", "rank": 4, "min_points": 3000}, "min_points", "Gold (rank 3) starts at 5000"),
])
def test_a_tier_that_breaks_the_ladder_is_a_field_error(root_client, fields, field, words):
    _ladder()
    errors = _errors(root_client.post(reverse("admin:loyalty_tier_add"), {**fields, "is_vip": ""}))
    assert list(errors) == [field] and words in errors[field][0]
    assert Tier.objects.count() == 3


def test_a_tier_cards_hold_is_not_deleted(root_client):
    _ladder()
    member = Tier.objects.get(name="Member")
    card_get_or_create(Contact.objects.create(external_userid="wmTIER", name="T").pk)
    Card.objects.update(tier=member)
    response = root_client.post(reverse("admin:loyalty_tier_delete", args=[member.pk]), {"post": "yes"})
    assert Tier.objects.filter(pk=member.pk).exists()
    assert response.status_code == 200 and response.context["protected"]  # the admin lists the cards holding it
    with pytest.raises(ApplicationError, match="Cards are in tier Member") as refused:  # any other caller
        tier_delete(member.pk)
    assert refused.value.field == "tier"
    silver = Tier.objects.get(name="Silver")
    root_client.post(reverse("admin:loyalty_tier_delete", args=[silver.pk]), {"post": "yes"})
    assert not Tier.objects.filter(pk=silver.pk).exists()


def test_a_reward_with_a_bad_cost_is_a_field_error_not_a_constraint(root_client):
    response = root_client.post(reverse("admin:loyalty_reward_add"),
                                {"name": "Mug", "points_cost": 0, "stock": "", "is_active": "on"})
    errors = _errors(response)
    assert errors == {"points_cost": ["A reward costs at least 1 point."]}
    assert "reward_cost_gt_0" not in response.content.decode()
    assert not Reward.objects.exists()
    assert root_client.post(reverse("admin:loyalty_reward_add"),
                            {"name": "Mug", "points_cost": 300, "stock": 5, "is_active": "on"}).status_code == 302
    assert Reward.objects.get().stock == 5


def test_a_redeemed_reward_is_switched_off_not_deleted(root_client):
    reward = Reward.objects.create(name="Mug", points_cost=10)
    card = card_get_or_create(Contact.objects.create(external_userid="wmMUG", name="M").pk)
    points_adjust(card_id=card.pk, delta=50, idempotency_key="gift-1", reason="welcome")
    redemption_create(card_id=card.pk, reward_id=reward.pk, idempotency_key="r-1")
    response = root_client.post(reverse("admin:loyalty_reward_delete", args=[reward.pk]), {"post": "yes"})
    assert response.status_code == 200 and response.context["protected"]
    with pytest.raises(ApplicationError, match="switch it off instead"):
        reward_delete(reward.pk)
    assert Reward.objects.filter(pk=reward.pk).exists() and Redemption.objects.count() == 1
    never_redeemed = Reward.objects.create(name="Pen", points_cost=5)
    assert root_client.post(reverse("admin:loyalty_reward_delete", args=[never_redeemed.pk]),
                            {"post": "yes"}).status_code == 302
    assert not Reward.objects.filter(pk=never_redeemed.pk).exists()


def test_a_store_is_written_through_the_service_with_its_members(root_client, django_user_model):
    store_upsert(code="SH001", name="Shanghai")
    manager = django_user_model.objects.create_user("sam", password="pw", is_staff=True)
    errors = _errors(root_client.post(reverse("admin:loyalty_store_add"),
                                      {"code": "sh001", "name": "Again", "city": "", "is_active": "on"}))
    assert list(errors) == ["code"] and "already exists" in errors["code"][0]
    errors = _errors(root_client.post(reverse("admin:loyalty_store_add"),
                                      {"code": "BJ001", "name": "  ", "city": "", "is_active": "on"}))
    assert "name" in errors
    assert Store.objects.count() == 1
    response = root_client.post(reverse("admin:loyalty_store_add"), {
        "code": "BJ001", "name": "Beijing", "city": "Beijing", "is_active": "on", "members": [manager.pk]})
    assert response.status_code == 302
    beijing = Store.objects.get(code="BJ001")
    assert list(beijing.members.all()) == [manager]


def test_a_store_code_the_tills_send_is_kept(root_client):
    store = store_upsert(code="SH001", name="Shanghai")
    card = card_get_or_create(Contact.objects.create(external_userid="wmTILL", name="T").pk)
    Purchase.objects.create(store=store, receipt_id="R-1", card=card, amount_fen=100)
    url = reverse("admin:loyalty_store_change", args=[store.pk])
    response = root_client.post(url, {"code": "SH002", "name": "Shanghai", "city": "", "is_active": "on"},
                                follow=True)
    assert Store.objects.get(pk=store.pk).code == "SH001"
    assert any("cannot change" in m for m in _messages(response))
    response = root_client.post(url, {"code": "SH001", "name": "Shanghai Jing'an", "city": "", "is_active": "on"})
    assert response.status_code == 302 and Store.objects.get(pk=store.pk).name == "Shanghai Jing'an"
