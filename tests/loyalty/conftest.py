"""Loyalty fixtures: default tiers, a store, contacts with cards, cashier/staff clients, and a VIP-hook recorder."""

from __future__ import annotations

import itertools

import pytest
from django.contrib.auth.models import Group, Permission
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from crm.models import Contact
from loyalty.permissions import CASHIER_GROUP
from loyalty.qr import qr_token_mint
from loyalty.services import card_get_or_create, store_upsert, tiers_ensure_defaults

_seq = itertools.count(1)


@pytest.fixture(autouse=True)
def vip_invites(monkeypatch):
    """Every VIP invitation the services enqueue (task ids), instead of a broker message no worker should see."""
    from loyalty import tasks

    sent: list[int] = []
    monkeypatch.setattr(tasks.vip_invite, "delay", lambda tier_change_id: sent.append(tier_change_id))
    return sent


@pytest.fixture
def tiers(db):
    return {tier.name: tier for tier in tiers_ensure_defaults()}


@pytest.fixture
def store(db):
    return store_upsert(code="store-sh-001", name="Shanghai Jing'an", city="Shanghai")


@pytest.fixture
def make_contact(db):
    def make(**kwargs) -> Contact:
        n = next(_seq)
        kwargs.setdefault("external_userid", f"wmLoyaltyTest{n:06d}")
        kwargs.setdefault("name", f"Shopper {n}")
        return Contact.objects.create(**kwargs)

    return make


@pytest.fixture
def card(tiers, make_contact):
    return card_get_or_create(make_contact().pk)


@pytest.fixture
def qr(card):
    """A fresh QR token for `card` (what the till reads off the card page)."""
    return qr_token_mint(card.number).token


def _client_for(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def cashier(db, django_user_model, store):
    user = django_user_model.objects.create_user(username=f"cashier{next(_seq)}", password="x" * 12)
    user.groups.add(Group.objects.get_or_create(name=CASHIER_GROUP)[0])
    store.members.add(user)  # a till scans only at the stores it is bound to
    return user


@pytest.fixture
def cashier_client(cashier):
    return _client_for(cashier)


@pytest.fixture
def staff_client(db, django_user_model):
    user = django_user_model.objects.create_user(username=f"staff{next(_seq)}", password="x" * 12, is_staff=True)
    # Reads loyalty across every store; no till, no adjust (crm.services.roles gives roles their own sets).
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="loyalty",
            codename__in=["view_card", "view_tier", "view_store", "view_reward", "all_stores"],
        )
    )
    return _client_for(user)


@pytest.fixture
def admin_client_api(db, django_user_model):
    user = django_user_model.objects.create_superuser(username=f"admin{next(_seq)}", password="x" * 12)
    return _client_for(user)


@pytest.fixture
def plain_client(db, django_user_model):
    user = django_user_model.objects.create_user(username=f"user{next(_seq)}", password="x" * 12)
    return _client_for(user)
