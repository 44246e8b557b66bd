"""Staff and channels written in the console through their services, against the simulator over real HTTP: staff
are added from WeCom's directory by userid and re-read from it, never edited or deleted; a channel's new name or
staff reach its contact way in WeCom (a refusal is a message, nothing changed); "simulate adds" has simulated
shoppers scan a channel's QR, and their callbacks arrive."""

from __future__ import annotations

import pytest
from django.urls import reverse

from crm.models import CallbackEvent, Channel, Staff
from crm.services.channels import channel_create
from crm.wecom.client import get_client
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_staff_are_added_from_wecom_by_userid(staffed, admin_client):
    staffed.member("dave", "Dave Wang")  # in WeCom's directory, not synced yet
    url = reverse("admin:crm_staff_add")
    assert admin_client.post(url, {"userid": "dave"}).status_code == 302
    dave = Staff.objects.get(userid="dave")
    assert (dave.name, dave.status, dave.synced_at is not None) == ("Dave Wang", Staff.Status.ACTIVE, True)

    for userid, words in (("ghost", "WeCom has no member ghost"), ("ALICE", "ALICE is already staff")):
        response = admin_client.post(url, {"userid": userid}, follow=True)
        assert any(words in m for m in _messages(response)), _messages(response)
    assert Staff.objects.count() == 4  # alice, bob, carol, dave


def test_staff_are_read_from_wecom_not_edited_or_deleted(staffed, admin_client):
    alice = Staff.objects.get(userid="alice")
    change = reverse("admin:crm_staff_change", args=[alice.pk])
    assert admin_client.post(change, {"userid": "mallory", "name": "Mallory"}).status_code == 302
    alice.refresh_from_db()
    assert (alice.userid, alice.name) == ("alice", "Alice")  # every field is WeCom's
    assert admin_client.post(reverse("admin:crm_staff_delete", args=[alice.pk]), {"post": "yes"}).status_code == 403

    staffed.post("members/alice/resign")
    response = admin_client.get(f"/admin/crm/staff/{alice.pk}/refresh_from_wecom/", follow=True)
    alice.refresh_from_db()
    assert alice.status == Staff.Status.RESIGNED and alice.resigned_at is not None
    assert any("re-read from WeCom" in m for m in _messages(response))


def test_a_channel_change_reaches_its_contact_way(staffed, admin_client):
    bob, carol = Staff.objects.get(userid="bob"), Staff.objects.get(userid="carol")
    channel = channel_create(name="Mall", state="mall-1", staff_userids=["alice", "bob"])
    url = reverse("admin:crm_channel_change", args=[channel.pk])
    form = {"name": "Mall east gate", "staff": [bob.pk, carol.pk], "welcome_text": "Hi", "active_from_0": "",
            "active_from_1": "", "active_until_0": "", "active_until_1": ""}
    assert admin_client.post(url, form).status_code == 302
    way = get_client().get_contact_way(channel.config_id)["contact_way"]
    assert (way["remark"], sorted(way["user"])) == ("Mall east gate", ["bob", "carol"])
    channel.refresh_from_db()
    assert sorted(channel.staff.values_list("userid", flat=True)) == ["bob", "carol"]

    single = channel_create(name="Counter", state="counter-1", staff_userids=["alice"])  # a one-person QR
    response = admin_client.post(reverse("admin:crm_channel_change", args=[single.pk]),
                                 {**form, "name": "Counter 2"}, follow=True)
    assert any("WeCom refused the change" in m for m in _messages(response)), _messages(response)
    single.refresh_from_db()
    assert single.name == "Counter" and list(single.staff.values_list("userid", flat=True)) == ["alice"]


def test_adding_a_channel_creates_its_qr_and_opens_its_page(staffed, admin_client):
    alice = Staff.objects.get(userid="alice")
    response = admin_client.post(reverse("admin:crm_channel_add"), {
        "name": "Window", "state": "window-1", "staff": [alice.pk], "welcome_text": "",
        "active_from_0": "", "active_from_1": "", "active_until_0": "", "active_until_1": ""})
    channel = Channel.objects.get(state="window-1")
    assert channel.config_id and channel.qr_code  # made in WeCom by the time the page answers
    assert response.status_code == 302 and response["Location"] == reverse("console:channel", args=[channel.pk])


def test_simulate_adds_has_shoppers_scan_the_qr(staffed, admin_client):
    channel = channel_create(name="Demo", state="demo-1", staff_userids=["alice"])
    url = f"/admin/crm/channel/{channel.pk}/simulate_adds/"
    dialog = admin_client.get(url)
    assert dialog.status_code == 200 and 'name="customers"' in dialog.content.decode()
    bad = admin_client.post(url, {"customers": 0, "_form_submitted": "on"})
    assert bad.status_code == 200 and "HX-Redirect" not in bad  # the dialog again, with the field's error
    done = admin_client.post(url, {"customers": 3, "_form_submitted": "on"},
                             HTTP_REFERER=reverse("admin:crm_channel_change", args=[channel.pk]))
    assert done["HX-Redirect"] == reverse("admin:crm_channel_change", args=[channel.pk])
    # WeCom (the simulator) calls back for each add; the callbacks are stored as they come.
    def adds() -> set[str]:
        rows = CallbackEvent.objects.filter(change_type="add_external_contact").values_list("payload", flat=True)
        return {p["ExternalUserID"] for p in rows if p.get("State") == "demo-1"}

    wait_for(lambda: len(adds()) == 3, timeout=20, message="three shoppers' add callbacks")
