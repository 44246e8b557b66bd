"""Staff sync and channel creation, over real HTTP to the simulator."""

from __future__ import annotations

import pytest

from crm.errors import ApplicationError
from crm.models import Channel, Staff
from crm.services.channels import channel_create
from crm.services.staff import staff_sync
from crm.wecom.client import get_client
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_staff_sync_mirrors_directory_and_marks_resigned(sim):
    sim.member("alice", "Alice")
    sim.member("bob", "Bob")
    counts = staff_sync()
    assert counts["created"] == 2
    alice = Staff.objects.get(userid="alice")
    assert alice.name == "Alice" and alice.is_active and alice.has_customer_contact

    sim.post("members/bob/resign")
    counts = staff_sync()
    bob = Staff.objects.get(userid="bob")
    assert bob.status == Staff.Status.RESIGNED and bob.resigned_at is not None
    assert counts["resigned"] == 1
    # Resync is stable: nothing newly resigned, nobody deleted.
    assert staff_sync()["resigned"] == 0
    assert Staff.objects.count() == 2


def test_channel_create_makes_contact_way_in_wecom(staffed):
    channel = channel_create(name="Shanghai store 1", state="store-sh-001", staff_userids=["alice", "bob"],
                             welcome_text="Hi from Shanghai!")
    assert channel.config_id and channel.qr_code
    assert set(channel.staff.values_list("userid", flat=True)) == {"alice", "bob"}
    way = get_client().get_contact_way(channel.config_id)["contact_way"]
    assert way["state"] == "store-sh-001"
    assert way["scene"] == 2 and way["type"] == 2
    assert sorted(way["user"]) == ["alice", "bob"]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"state": "x" * 31}, "state"),
        ({"state": "bad state!"}, "state"),
        ({"staff_userids": ["nobody"]}, "staff_userids"),
        ({"staff_userids": []}, "staff_userids"),
        ({"name": " "}, "name"),
    ],
)
def test_channel_create_refuses_bad_input_naming_field(staffed, kwargs, field):
    args = {"name": "Store", "state": "store-1", "staff_userids": ["alice"], **kwargs}
    with pytest.raises(ApplicationError) as info:
        channel_create(**args)
    assert info.value.field == field
    assert not Channel.objects.exists()


def test_channel_state_is_unique(staffed):
    channel_create(name="A", state="dup-state", staff_userids=["alice"])
    with pytest.raises(ApplicationError) as info:
        channel_create(name="B", state="dup-state", staff_userids=["bob"])
    assert info.value.field == "state"
    assert Channel.objects.count() == 1


@pytest.mark.worker
def test_admin_add_channel_creates_the_contact_way(staffed, admin_client, celery_worker):
    from django.urls import reverse

    alice = Staff.objects.get(userid="alice")
    url = reverse("admin:crm_channel_add")
    refused = admin_client.post(url, {"name": "Bad", "state": "has space", "staff": [alice.pk]})
    assert refused.status_code == 200 and b"state must be" in refused.content
    assert not Channel.objects.exists()
    response = admin_client.post(url, {"name": "Admin QR", "state": "admin-qr", "staff": [alice.pk],
                                       "welcome_text": "Hello"})
    assert response.status_code == 302, response.content[:3000]
    channel = wait_for(lambda: Channel.objects.exclude(config_id="").first(), timeout=30, message="registered")
    assert channel.qr_code
    assert get_client().get_contact_way(channel.config_id)["contact_way"]["state"] == "admin-qr"
    assert list(channel.staff.values_list("userid", flat=True)) == ["alice"]


def _ways_with_state(state: str) -> list[str]:
    client = get_client()
    ids = [w["config_id"] for w in client.list_contact_way(limit=1000)["contact_way"]]
    return [i for i in ids if client.get_contact_way(i)["contact_way"].get("state") == state]


@pytest.mark.parametrize(("kind", "delay_ms"), [("slow", 900), ("timeout", 700), ("5xx", None)],
                         ids=["created-unanswered", "not-created", "bad-gateway"])
def test_an_unanswered_contact_way_is_found_or_made_once(staffed, settings, kind, delay_ms):
    """add_contact_way is not idempotent: when WeCom does not answer, the channel adopts the way the lost call
    made (slow: WeCom made it after the client gave up) or makes it again (it made none); one way either way."""
    settings.WECOM_HTTP_TIMEOUT = 0.5
    staffed.post("faults", {"path": "externalcontact/add_contact_way", "kind": kind, "count": 1,
                            "delay_ms": delay_ms})  # fmt: skip
    channel = channel_create(name="Beijing store", state="store-bj-001", staff_userids=["alice"])
    assert _ways_with_state("store-bj-001") == [channel.config_id]
    assert staffed.get("stats")["calls"]["externalcontact/add_contact_way"] == (1 if kind == "slow" else 2)
