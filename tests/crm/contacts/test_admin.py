"""Every model of the contacts domain is in the admin, lists, searches and opens."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse

from crm.models import Contact, FollowRelation, Staff
from crm.models.staff import Handover
from crm.services.contacts import contact_set_phone

pytestmark = pytest.mark.django_db

MODELS = [
    "staff", "handover", "handoveritem", "grouphandoveritem", "contact", "followrelation", "contactevent",
    "welcomemessage", "syncrun", "channel", "taggroup", "tag", "contacttag", "customergroup", "groupmember",
    "groupjoinway", "vipinvite", "consentrecord", "datasource", "sourceevent", "sourceorderline", "sourceaggregate",
]


@pytest.mark.parametrize("model", MODELS)
def test_changelist_and_search(admin_client, model):
    url = reverse(f"admin:crm_{model}_changelist")
    assert admin_client.get(url).status_code == 200
    assert admin_client.get(url, {"q": "mei"}).status_code == 200
    model_admin = admin.site._registry[next(m for m in admin.site._registry if m._meta.model_name == model)]
    assert model_admin.search_fields


def test_contact_search_by_phone_and_detail(admin_client):
    mei = Contact.objects.create(external_userid="wmMEI", name="Mei")
    Contact.objects.create(external_userid="wmLEI", name="Lei")
    contact_set_phone(mei, "13800138000")
    FollowRelation.objects.create(staff=Staff.objects.create(userid="alice"), contact=mei)
    response = admin_client.get(reverse("admin:crm_contact_changelist"), {"q": "138-0013-8000"})
    assert b"wmMEI" in response.content and b"wmLEI" not in response.content
    assert admin_client.get(reverse("admin:crm_contact_change", args=[mei.pk])).status_code == 200


def test_handover_add_form_and_report_action(admin_client):
    alice = Staff.objects.create(userid="alice", status="resigned")
    bob = Staff.objects.create(userid="bob")
    response = admin_client.post(reverse("admin:crm_handover_add"), {
        "kind": "resigned", "handover_staff": alice.pk, "takeovers": [bob.pk], "transfer_message": "",
        "include_groups": "on",
        "items-TOTAL_FORMS": 0, "items-INITIAL_FORMS": 0, "group_items-TOTAL_FORMS": 0,
        "group_items-INITIAL_FORMS": 0,
    })
    assert response.status_code == 302, response.content[:2000]
    handover = Handover.objects.get()
    assert handover.created_by == "admin"
    response = admin_client.post(reverse("admin:crm_handover_changelist"),
                                 {"action": "show_report", "_selected_action": [handover.pk]}, follow=True)
    assert f"Handover #{handover.pk}: {{&#x27;handover&#x27;: {handover.pk}".encode() in response.content
