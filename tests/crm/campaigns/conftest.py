"""Fixtures for campaign and red-packet tests: CRM rows, and (for live tests) the matching simulated world."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from crm.models import ConsentRecord, Contact, FollowRelation, Staff
from crm.services.consent import consent_policy_version, consent_record

_seq = itertools.count(1)


def make_staff(userid: str | None = None, **fields) -> Staff:
    return Staff.objects.create(userid=userid or f"staff{next(_seq)}", name=fields.pop("name", "Staff"), **fields)


def grant_marketing(contact: Contact) -> None:
    """The customer's explicit opt-in to offers (campaigns reach nobody else)."""
    consent_record(contact_id=contact.id, purpose=ConsentRecord.Purpose.MARKETING, granted=True, source="card_page",
                   policy_version=consent_policy_version())


def make_contact(staff: Staff | None = None, eid: str | None = None, *, marketing: bool = True, **fields) -> Contact:
    """A contact (followed by `staff` when given) who agreed to marketing unless marketing=False."""
    contact = Contact.objects.create(external_userid=eid or f"wmtest{next(_seq):08d}", name=fields.pop("name", "C"),
                                     **fields)
    if staff is not None:
        FollowRelation.objects.create(staff=staff, contact=contact, added_at=timezone.now())
    if marketing:
        grant_marketing(contact)
    return contact


def later(**kw) -> timedelta:
    return timezone.now() + timedelta(**kw)


@pytest.fixture
def admin_client(client, django_user_model):
    user = django_user_model.objects.create_user("boss", password="pw", is_staff=True, is_superuser=True)
    client.force_login(user)
    return client


@pytest.fixture
def plain_staff_client(client):
    user = get_user_model().objects.create_user("clerk", password="pw", is_staff=False)
    client.force_login(user)
    return client


class Sim:
    """The simulator's admin API over HTTP (the only way the CRM side reaches it)."""

    def __init__(self, base: str) -> None:
        self.base = f"{base}/wecom-sim/admin"
        self.headers = {"X-Sim-Admin-Key": settings.WECOM_SIM["ADMIN_KEY"]}

    def call(self, verb: str, route: str, /, **json) -> dict:
        response = requests.request(verb, f"{self.base}/{route}", json=json or None, headers=self.headers,
                                    timeout=30)
        assert response.status_code < 300, (route, response.status_code, response.text[:500])
        return response.json() if response.content else {}

    def member(self, userid: str, name: str = "Staff") -> None:
        self.call("POST", "members", userid=userid, name=name)

    def shopper(self, name: str) -> str:
        return self.call("POST", "shoppers", name=name)["external_userid"]


@pytest.fixture
def sim(live_stack) -> Sim:
    return Sim(live_stack)


def befriend(sim: Sim, staff: Staff, name: str, *, marketing: bool = True) -> Contact:
    """A shopper in the simulator who adds `staff` through a contact way, and the same contact in the CRM
    (agreeing to marketing unless marketing=False)."""
    from crm.wecom.client import get_client

    state = f"cmp-{staff.userid}"[:30]
    way = get_client().add_contact_way(type=1, scene=2, user=[staff.userid], state=state, skip_verify=True)
    eid = sim.shopper(name)
    sim.call("POST", f"shoppers/{eid}/scan_contact_way", config_id=way["config_id"])
    contact, _ = Contact.objects.get_or_create(external_userid=eid, defaults={"name": name})
    FollowRelation.objects.get_or_create(staff=staff, contact=contact, defaults={"added_at": timezone.now()})
    if marketing:
        grant_marketing(contact)
    return contact
