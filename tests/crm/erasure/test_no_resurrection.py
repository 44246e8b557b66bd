"""An erased person stays erased: a full sync, the nightly reconciliation, edit/delete callbacks, a late add from
before the erasure, order imports and a phone noted in WeCom never bring them back. A new add by the same WeChat
user (they delete the staff member and add again) is a new relationship: it supersedes the tombstone. Against the
simulator, the callbacks through the worker."""

from __future__ import annotations

from datetime import timedelta

import pytest

from crm.errors import ApplicationError
from crm.models import CallbackEvent, Contact, ErasureTombstone, FollowRelation
from crm.models.consent import SourceOrderLine
from crm.services.channels import channel_create
from crm.services.contact_events import contact_add_from_callback, contact_edit_from_callback
from crm.services.contacts import contact_set_phone
from crm.services.erasure import contact_erase
from crm.services.openness import datasources_ensure_defaults, source_import_csv, source_ingest
from crm.services.sync import reconcile, sync_run, sync_start
from tests.conftest import wait_for
from tests.crm.contacts.conftest import settle, sim, staffed  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker, pytest.mark.timeout(300)]

HEADER = "order_id,line_no,phone,sku,quantity,amount_fen,ordered_at\n"


def _all_routed():
    return not CallbackEvent.objects.exclude(status="processed").exists()


def test_nothing_brings_an_erased_person_back_but_a_new_add(staffed, celery_worker, redis_client):  # noqa: F811
    world = staffed
    datasources_ensure_defaults()
    channel_create(name="Store", state="store-erase", staff_userids=["alice"])
    eid = world.shopper("Mei")
    world.scan(eid, "store-erase")
    mei = wait_for(lambda: Contact.objects.filter(external_userid=eid, follows__isnull=False).first(), timeout=30,
                   message="contact made by the add callback")
    wait_for(_all_routed, timeout=30, message="every callback routed")
    settle(world, redis_client)
    contact_set_phone(mei, "13800138000")
    contact_erase(mei.pk, actor="dpo", reason="customer request")
    mei.refresh_from_db()

    # Full sync and the nightly reconciliation: WeCom still lists the relation, the CRM does not take it back.
    assert sync_run(sync_start().pk)["counts"]["erased_skipped"] == 1
    nightly = reconcile()
    assert nightly["contacts"]["counts"]["erased_skipped"] == 1
    assert not Contact.objects.filter(external_userid=eid).exists()
    assert not FollowRelation.objects.exists() and Contact.objects.get().pk == mei.pk
    # Callbacks: an edit, a delete, and an add from before the erasure delivered late.
    assert contact_edit_from_callback(external_userid=eid) == "contact gone in WeCom"
    late = contact_add_from_callback(userid="alice", external_userid=eid, state="store-erase",
                                     event_time=mei.erased_at - timedelta(hours=1))
    assert late.startswith("erased")
    assert not Contact.objects.filter(external_userid=eid).exists()
    # Imports match by phone hash: the erased number is neither linked nor kept.
    assert source_import_csv(source_code="tmall", text=HEADER + "T1,1,13800138000,SKU,1,100,2026-11-11T00:00:00+08:00\n"
                             )["unmatched"] == 1
    source_ingest(source_code="jd", records=[{"order_id": "J1", "phone": "+86 138 0013 8000", "sku": "S",
                                              "amount_fen": 200, "ordered_at": "2026-11-11T00:00:00+08:00"}])
    assert set(SourceOrderLine.objects.values_list("order_id", "contact_id", "phone_hash")) == {
        ("T1", None, ""), ("J1", None, "")}
    # The number noted on someone else's relation in WeCom is not taken on either.
    other = Contact.objects.create(external_userid="wmOTHER")
    with pytest.raises(ApplicationError) as err:
        contact_set_phone(other, "138-0013-8000")
    assert err.value.field == "phone"
    tomb = ErasureTombstone.objects.get()
    assert tomb.superseded_at is None

    # A new add: the customer deletes Alice and adds her again through the store QR.
    world.post(f"shoppers/{eid}/delete_staff", {"userid": "alice"})
    world.scan(eid, "store-erase")
    back = wait_for(lambda: Contact.objects.filter(external_userid=eid, follows__isnull=False).first(), timeout=30,
                    message="the new add made a new contact")
    assert back.pk != mei.pk and back.erased_at is None and back.name == "Mei"
    tomb.refresh_from_db()
    assert tomb.superseded_at is not None and tomb.superseded_by_id == back.pk
    wait_for(_all_routed, timeout=30, message="every callback routed")
    # The new relationship is the CRM's again: syncs keep it, the old row stays erased.
    assert sync_run(sync_start().pk)["counts"].get("erased_skipped", 0) == 0
    assert Contact.objects.get(pk=mei.pk).erased_at is not None
    contact_set_phone(back, "13800138000")  # their number is theirs again
