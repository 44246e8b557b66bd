"""The handover wizard and its live page, through Django's test client: each step, each refusal (bad input,
a service refusal, 403, 404, CSRF), nothing written before the confirm step."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.utils import timezone

from crm.models import Contact, FollowRelation, Staff
from crm.models.groups import CustomerGroup
from crm.models.staff import Handover, HandoverItem
from tests.crm.contacts.conftest import sim, staffed  # noqa: F401  (the live simulator world)

pytestmark = pytest.mark.django_db
WIZARD = "/admin/console/handover/"


@pytest.fixture
def world():
    """alice resigned with 3 customers and a group; bob and carol active; dave active without customer contact."""
    alice = Staff.objects.create(userid="alice", name="Alice", status=Staff.Status.RESIGNED,
                                 resigned_at=datetime(2026, 11, 1, 2, 30, tzinfo=UTC))
    bob = Staff.objects.create(userid="bob", name="Bob")
    Staff.objects.create(userid="carol", name="Carol")
    Staff.objects.create(userid="dave", name="Dave", has_customer_contact=False)
    for i in range(3):
        contact = Contact.objects.create(external_userid=f"wm-alice-{i}", name=f"Shopper {i}")
        FollowRelation.objects.create(staff=alice, contact=contact, remark=f"note {i}", added_at=timezone.now())
    gone = Contact.objects.create(external_userid="wm-gone", name="Gone")
    FollowRelation.objects.create(staff=alice, contact=gone, deleted_by_customer_at=timezone.now())
    CustomerGroup.objects.create(chat_id="wr-alice-fans", name="Alice's fans", owner=alice)
    return {"alice": alice, "bob": bob}


@pytest.fixture
def boss(client, django_user_model):
    user = django_user_model.objects.create_user("boss", password="pw", is_staff=True, is_superuser=True)
    client.force_login(user)
    return client


def _body(response) -> str:
    return response.content.decode()


def test_step_1_lists_resigned_staff_holding_customers(boss, world):
    response = boss.get(WIZARD)
    assert response.status_code == 200
    page = _body(response)
    assert 'data-step="leaver"' in page and 'aria-current="step"' in page
    assert 'data-testid="leavers"' in page and "?leaver=alice&amp;step=customers" in page
    assert "2026-11-01 10:30" in page  # resigned_at 02:30 UTC shown in Asia/Shanghai
    assert 'name="leaver"' in page and 'value="bob"' in page
    assert not Handover.objects.exists()


def test_step_2_shows_the_leavers_customers_and_groups(boss, world):
    response = boss.get(WIZARD, {"leaver": "alice", "step": "customers"})
    assert response.status_code == 200
    page = _body(response)
    assert 'data-step="customers"' in page
    assert 'data-testid="customers-count">3<' in page and 'data-testid="groups-count">1<' in page
    for i in range(3):
        assert f'data-eid="wm-alice-{i}"' in page
    assert "wm-gone" not in page  # the customer deleted alice: nothing left to hand over
    assert 'data-chat-id="wr-alice-fans"' in page
    assert 'data-kind="resigned"' in page  # kind left empty: a resigned leaver means a resigned handover


def test_unknown_leaver_and_bad_step_are_refused_on_step_1(boss, world):
    response = boss.get(WIZARD, {"leaver": "ghost", "step": "customers"})
    assert response.status_code == 400
    page = _body(response)
    assert 'data-step="leaver"' in page and "Choose a staff member from the list." in page
    response = boss.get(WIZARD, {"leaver": "alice", "kind": "sideways", "step": "confirm", "takeovers": "bob"})
    assert response.status_code == 400 and 'data-step="leaver"' in _body(response)
    response = boss.get(WIZARD, {"step": "../../etc"})
    assert response.status_code == 200 and 'data-step="leaver"' in _body(response)


def test_step_3_offers_only_staff_who_can_take_over(boss, world):
    response = boss.get(WIZARD, {"leaver": "alice", "kind": "resigned", "step": "takeovers"})
    assert response.status_code == 200
    page = _body(response)
    assert 'data-step="takeovers"' in page
    assert 'value="bob"' in page and 'value="carol"' in page
    assert 'value="dave"' not in page and 'name="takeovers" value="alice"' not in page
    assert 'name="transfer_message"' not in page  # WeCom's resigned transfer carries no message
    onjob = _body(boss.get(WIZARD, {"leaver": "bob", "kind": "onjob", "step": "takeovers"}))
    assert 'name="transfer_message"' in onjob and 'name="takeovers" value="bob"' not in onjob


def test_step_4_without_takeovers_or_with_a_bad_one_goes_back_to_step_3(boss, world):
    response = boss.get(WIZARD, {"leaver": "alice", "kind": "resigned", "step": "confirm"})
    assert response.status_code == 400
    assert 'data-step="takeovers"' in _body(response) and "Choose at least one takeover." in _body(response)
    response = boss.get(WIZARD, {"leaver": "alice", "kind": "resigned", "step": "confirm", "takeovers": "dave"})
    assert response.status_code == 400 and "dave cannot take over customers." in _body(response)
    too_long = {"leaver": "bob", "kind": "onjob", "step": "confirm", "takeovers": "carol",
                "transfer_message": "x" * 201}
    response = boss.get(WIZARD, too_long)
    assert response.status_code == 400 and 'data-step="takeovers"' in _body(response)
    assert not Handover.objects.exists()


def test_step_4_confirms_the_round_robin_split(boss, world):
    response = boss.get(WIZARD, {"leaver": "alice", "kind": "resigned", "step": "confirm",
                                 "takeovers": ["carol", "bob"], "include_groups": "on"})
    assert response.status_code == 200
    page = _body(response)
    assert 'data-step="confirm"' in page and 'method="post"' in page and "csrfmiddlewaretoken" in page
    # 3 customers over bob and carol, in userid order as handover_plan assigns them: 2 and 1; the group to bob.
    assert '<tr class="border-t border-base-200 dark:border-base-800" data-takeover="bob">' in page
    split = page.split('data-testid="split"')[1].split("</table>")[0]
    assert [cell.split("</td>")[0] for cell in split.split('<td class="py-2 px-2">')[1:]] == [
        "Bob (bob)", "2", "1", "Carol (carol)", "1", "0"]
    assert not Handover.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_confirm_creates_and_starts_the_handover(staffed, boss):  # noqa: F811
    """Live: starting a resigned handover asks WeCom whether the leaver has really left."""
    from crm.services.staff import staff_sync

    staffed.post("members/alice/resign")
    staff_sync()
    response = boss.post(WIZARD, {"leaver": "alice", "kind": "resigned", "takeovers": ["bob", "carol"],
                                  "include_groups": "on"})
    handover = Handover.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/admin/console/handover/{handover.pk}/"
    assert handover.kind == "resigned" and handover.handover_staff.userid == "alice"
    assert sorted(handover.takeovers.values_list("userid", flat=True)) == ["bob", "carol"]
    assert handover.include_groups and handover.created_by == "boss"
    assert handover.status == Handover.Status.SUBMITTING  # queued for the worker
    page = _body(boss.get(response["Location"]))
    assert f"Handover #{handover.pk} started" in page and 'data-testid="handover-progress"' in page


def test_a_refusal_by_the_service_is_shown_on_its_step_and_writes_nothing(boss, world):
    # bob is still active: a resigned handover of him is refused by handover_create.
    response = boss.post(WIZARD, {"leaver": "bob", "kind": "resigned", "takeovers": ["carol"]})
    assert response.status_code == 400
    page = _body(response)
    assert 'data-step="leaver"' in page and "A resigned handover needs a resigned staff member" in page
    # alice has resigned: an on-the-job transfer of her is refused the other way round.
    response = boss.post(WIZARD, {"leaver": "alice", "kind": "onjob", "takeovers": ["carol"]})
    assert response.status_code == 400 and "use a resigned handover" in _body(response)
    assert not Handover.objects.exists()


def test_the_service_refusal_comes_on_step_1_before_any_customer_is_shown(boss, world):
    response = boss.get(WIZARD, {"leaver": "bob", "kind": "resigned", "step": "customers"})
    assert response.status_code == 400
    page = _body(response)
    assert 'data-step="leaver"' in page and "A resigned handover needs a resigned staff member" in page
    assert 'data-testid="customers-count"' not in page
    assert _body(boss.get(WIZARD, {"leaver": "bob", "step": "customers"})).count('data-kind="onjob"') == 1


def test_csrf_is_enforced_on_confirm(world, django_user_model):
    client = Client(enforce_csrf_checks=True)
    client.force_login(django_user_model.objects.create_user("boss", password="pw", is_staff=True,
                                                             is_superuser=True))
    response = client.post(WIZARD, {"leaver": "alice", "kind": "resigned", "takeovers": ["bob"]})
    assert response.status_code == 403
    assert not Handover.objects.exists()


def test_permission_is_required(client, world, django_user_model):
    anonymous = client.get(WIZARD)
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    clerk = django_user_model.objects.create_user("clerk", password="pw", is_staff=True)
    client.force_login(clerk)
    handover = Handover.objects.create(kind="resigned", handover_staff=world["alice"])
    for url in (WIZARD, f"{WIZARD}{handover.pk}/", f"{WIZARD}{handover.pk}/progress/"):
        assert client.get(url).status_code == 403, url
    assert client.post(WIZARD, {"leaver": "alice", "kind": "resigned", "takeovers": ["bob"]}).status_code == 403
    assert client.post(f"{WIZARD}{handover.pk}/check/").status_code == 403
    # The marketing role works with campaigns and contacts, not with staff handover.
    clerk.groups.add(Group.objects.get(name="marketing"))
    client.force_login(clerk)
    assert client.get(WIZARD).status_code == 403
    clerk.user_permissions.add(Permission.objects.get(codename="handover_staff", content_type__app_label="crm"))
    client.force_login(clerk)  # a fresh user object: no cached permissions
    assert client.get(WIZARD).status_code == 200
    head = django_user_model.objects.create_user("head", password="pw", is_staff=True)
    head.groups.add(Group.objects.get(name="admin"))
    client.force_login(head)
    assert client.get(f"{WIZARD}{handover.pk}/").status_code == 200
    assert Handover.objects.count() == 1


def _handover_with_items(world) -> Handover:
    handover = Handover.objects.create(kind="resigned", handover_staff=world["alice"],
                                       status=Handover.Status.WAITING)
    handover.takeovers.set([world["bob"]])
    for i, status in enumerate(["waiting", "done", "refused", "limit"]):
        contact = Contact.objects.get(external_userid=f"wm-alice-{i}") if i < 3 else Contact.objects.create(
            external_userid=f"wm-x-{i}")
        HandoverItem.objects.create(handover=handover, contact=contact, external_userid=contact.external_userid,
                                    takeover=world["bob"], status=status,
                                    finished_at=None if status == "waiting" else timezone.now())
    return handover


def test_live_page_follows_every_transfer_and_polls_until_final(boss, world):
    handover = _handover_with_items(world)
    page = _body(boss.get(f"{WIZARD}{handover.pk}/"))
    assert 'data-step="follow"' in page
    assert f'hx-get="/admin/console/handover/{handover.pk}/progress/"' in page and 'hx-trigger="every 2s"' in page
    fragment = boss.get(f"{WIZARD}{handover.pk}/progress/")
    assert fragment.status_code == 200
    body = _body(fragment)
    assert "<html" not in body  # the block alone, for htmx to swap in
    for status, count in {"waiting": 1, "done": 1, "refused": 1, "limit": 1, "planned": 0, "failed": 0}.items():
        assert f'data-testid="count-{status}">{count}<' in body, status
    assert 'data-percent="75"' in body and 'data-final="false"' in body
    assert body.index('data-status="waiting"', body.index('data-testid="transfers"')) < body.index(
        'data-status="done"', body.index('data-testid="transfers"'))  # unfinished first
    assert "Check results now" in body

    HandoverItem.objects.filter(status="waiting").update(status="done", finished_at=timezone.now())
    Handover.objects.filter(pk=handover.pk).update(status=Handover.Status.FINISHED, finished_at=timezone.now())
    body = _body(boss.get(f"{WIZARD}{handover.pk}/progress/"))
    assert 'data-final="true"' in body and 'data-percent="100"' in body
    assert "hx-get" not in body and "hx-trigger" not in body  # polling stops
    assert 'data-testid="count-done">2<' in body


def test_unknown_handover_is_404(boss, world):
    for url in (f"{WIZARD}999/", f"{WIZARD}999/progress/"):
        assert boss.get(url).status_code == 404, url
    assert boss.post(f"{WIZARD}999/check/").status_code == 404
    assert boss.get(f"{WIZARD}999/check/").status_code == 405


def test_check_results_now_is_refused_when_not_waiting(boss, world):
    handover = _handover_with_items(world)
    Handover.objects.filter(pk=handover.pk).update(status=Handover.Status.FINISHED)
    response = boss.post(f"{WIZARD}{handover.pk}/check/", follow=True)
    assert response.status_code == 200
    assert "This handover is finished: every transfer has its result." in _body(response)
    Handover.objects.filter(pk=handover.pk).update(status=Handover.Status.SUBMITTING)
    response = boss.post(f"{WIZARD}{handover.pk}/check/", follow=True)
    assert "still being submitted to WeCom" in _body(response)
    Handover.objects.filter(pk=handover.pk).update(status=Handover.Status.WAITING)
    response = boss.post(f"{WIZARD}{handover.pk}/check/", follow=True)
    assert "Asked WeCom for the latest results" in _body(response)
    # From htmx: the live block comes back with the outcome in it, no redirect.
    response = boss.post(f"{WIZARD}{handover.pk}/check/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and "<html" not in _body(response)
    assert 'data-testid="notice" data-level="info"' in _body(response) and 'data-testid="handover-progress"' in _body(
        response)
    Handover.objects.filter(pk=handover.pk).update(status=Handover.Status.FINISHED)
    body = _body(boss.post(f"{WIZARD}{handover.pk}/check/", HTTP_HX_REQUEST="true"))
    assert 'data-level="error"' in body and "This handover is finished" in body


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_handover_through_the_wizard_reaches_done_in_the_worker(staffed, celery_worker, client,  # noqa: F811
                                                                  django_user_model):
    """The whole path with the simulator deciding: the wizard starts it, the worker submits, WeCom's 24 h pass on
    the simulator's clock, "check results now" has the worker read them, the live block ends final."""
    from crm.services.channels import channel_create
    from crm.services.staff import staff_sync
    from tests.conftest import wait_for

    world = staffed
    channel_create(name="Alice QR", state="alice-qr", staff_userids=["alice"])
    eids = [world.shopper(f"wizard-{i}") for i in range(3)]
    for eid in eids:
        world.scan(eid, "alice-qr")
    wait_for(lambda: FollowRelation.objects.filter(staff__userid="alice").count() == 3, timeout=60,
             message="alice's customers in the CRM")
    world.post("members/alice/resign")
    staff_sync()
    client.force_login(django_user_model.objects.create_user("boss", password="pw", is_staff=True,
                                                             is_superuser=True))
    preview = _body(client.get(WIZARD, {"leaver": "alice", "step": "customers"}))
    assert 'data-testid="customers-count">3<' in preview
    response = client.post(WIZARD, {"leaver": "alice", "kind": "resigned", "takeovers": ["bob", "carol"]})
    assert response.status_code == 302
    handover = Handover.objects.get()
    wait_for(lambda: Handover.objects.get(pk=handover.pk).status == Handover.Status.WAITING, timeout=60,
             message="submitted by the worker")
    fragment = _body(client.get(f"{WIZARD}{handover.pk}/progress/"))
    assert 'data-testid="count-waiting">3<' in fragment and 'data-final="false"' in fragment

    world.advance(24 * 3600 + 60)  # WeCom's 24 h in which a customer may refuse
    assert client.post(f"{WIZARD}{handover.pk}/check/").status_code == 302
    wait_for(lambda: Handover.objects.get(pk=handover.pk).status == Handover.Status.FINISHED, timeout=60,
             message="results read by the worker")
    fragment = _body(client.get(f"{WIZARD}{handover.pk}/progress/"))
    assert 'data-testid="count-done">3<' in fragment and 'data-final="true"' in fragment
    assert sorted(handover.items.values_list("takeover__userid", flat=True)) == ["bob", "bob", "carol"]
