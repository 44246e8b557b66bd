"""The campaign page through Django's test client: what it shows, the live progress block and when it stops
polling, remind and cancel through the services (refusals say why), 403, 404, 405 and CSRF."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from crm.models import Campaign, CampaignRecipient, Channel, MassMessage, Tag, TagGroup
from crm.services import campaigns as svc
from tests.crm.campaigns.conftest import make_contact, make_staff, sim  # noqa: F401  (sim: the live world)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def reachable(request):
    """One consenting, followed customer: the campaign service refuses a campaign that reaches nobody. The live
    test brings its own world (the simulator's staff and shoppers)."""
    if request.node.get_closest_marker("worker") is None:
        make_contact(make_staff())


@pytest.fixture
def boss(client, django_user_model):
    user = django_user_model.objects.create_user("boss", password="pw", is_staff=True, is_superuser=True)
    client.force_login(user)
    return client


def _url(campaign: Campaign, tail: str = "") -> str:
    return f"/admin/console/campaigns/{campaign.id}/{tail}"


def _body(response) -> str:
    return response.content.decode()


def test_page_shows_text_segment_schedule_and_red_packet(boss):
    group = TagGroup.objects.create(name="Tier")
    gold = Tag.objects.create(group=group, name="Gold", wecom_id="et-gold")
    channel = Channel.objects.create(name="Store Shanghai 1", state="store-sh-001")
    at = timezone.now().replace(microsecond=0) + timedelta(days=2)
    campaign = svc.campaign_create(
        name="11.11", text="Sale at 20:00\nsee you", segment={"tags": [gold.id], "channels": [channel.id]},
        link_title="Catalogue", link_url="https://example.com/c", scheduled_at=at,
        red_packet={"budget_fen": 12345, "count": 10, "expires_at": at + timedelta(days=1)},
    )
    response = boss.get(_url(campaign))
    assert response.status_code == 200
    page = _body(response)
    assert "Sale at 20:00\nsee you" in page and "https://example.com/c" in page
    assert "Gold" in page and "Store Shanghai 1" in page
    shanghai = at.astimezone(UTC) + timedelta(hours=8)  # Asia/Shanghai has no DST
    assert f'data-testid="scheduled-at">{shanghai:%Y-%m-%d %H:%M}<' in page  # shown in Asia/Shanghai
    assert 'data-testid="pool-budget">¥123.45<' in page and 'data-testid="pool-count">10<' in page
    assert 'data-status="scheduled"' in page
    assert 'hx-trigger="every 10s"' in page  # a scheduled campaign is polled slowly until it starts
    assert 'data-testid="remind-form"' in page and 'data-testid="cancel-form"' in page


def _running_campaign() -> Campaign:
    """A running campaign with 10 recipients at every stage: 2 pending in a task not created yet, 2 pending in a
    created task (not confirmed), 3 delivered, 1 not a friend, 1 rejected, 1 without a sender."""
    staff = make_staff("alice")
    campaign = Campaign.objects.create(name="live", text="hi", status=Campaign.Status.RUNNING,
                                       launched_at=timezone.now())
    waiting = MassMessage.objects.create(campaign=campaign, sender=staff, batch_no=0, idempotency_key="k0")
    created = MassMessage.objects.create(campaign=campaign, sender=staff, batch_no=1, idempotency_key="k1",
                                         status=MassMessage.Status.CREATED, msgid="msg-1")
    plan = [(waiting, "pending")] * 2 + [(created, "pending")] * 2 + [(created, "delivered")] * 3 + [
        (created, "not_friend"), (created, "rejected"), (None, "no_sender")]
    for message, status in plan:
        contact = make_contact(staff)
        CampaignRecipient.objects.create(campaign=campaign, contact=contact, external_userid=contact.external_userid,
                                         sender=staff if message else None, mass_message=message, status=status)
    return campaign


def test_progress_counts_each_stage_and_polls_while_running(boss):
    campaign = _running_campaign()
    fragment = boss.get(_url(campaign, "progress/"))
    assert fragment.status_code == 200
    body = _body(fragment)
    assert "<html" not in body
    expected = {"planned": 10, "sent": 6, "confirmed": 4, "delivered": 3, "failed": 3, "cancelled": 0}
    for key, value in expected.items():
        assert f'data-testid="figure-{key}">{value}<' in body, key
    assert 'data-percent="60"' in body and 'aria-valuenow="60"' in body
    assert 'data-segment="delivered"' in body and "width: 30.0%" in body
    assert f'hx-get="/admin/console/campaigns/{campaign.id}/progress/"' in body and 'hx-trigger="every 2s"' in body
    assert '<dl id="campaign-times" class="grid grid-cols-2 gap-4 lg:grid-cols-4" hx-swap-oob="true">' in body
    assert 'data-testid="campaign-status" data-status="running"' in body  # the header's status, out of band

    CampaignRecipient.objects.filter(campaign=campaign, status="pending").update(status="delivered")
    Campaign.objects.filter(id=campaign.id).update(status=Campaign.Status.DONE, finished_at=timezone.now())
    body = _body(boss.get(_url(campaign, "progress/")))
    assert 'data-percent="100"' in body and 'data-final="true"' in body
    assert 'data-testid="figure-delivered">7<' in body
    assert "hx-get" not in body  # done: polling stops


def test_cancelling_a_finished_campaign_says_why(boss):
    campaign = svc.campaign_create(name="over", text="x")
    Campaign.objects.filter(id=campaign.id).update(status=Campaign.Status.DONE, finished_at=timezone.now())
    response = boss.post(_url(campaign, "cancel/"), follow=True)
    assert response.status_code == 200
    assert "A done campaign cannot be cancelled." in _body(response)
    assert Campaign.objects.get(id=campaign.id).status == Campaign.Status.DONE


def test_cancel_a_scheduled_campaign(boss):
    campaign = svc.campaign_create(name="later", text="x", scheduled_at=timezone.now() + timedelta(hours=3))
    response = boss.post(_url(campaign, "cancel/"))
    assert response.status_code == 302 and response["Location"] == _url(campaign)
    assert Campaign.objects.get(id=campaign.id).status == Campaign.Status.CANCELLED
    page = _body(boss.get(_url(campaign)))
    assert "Campaign cancelled" in page and 'data-status="cancelled"' in page
    assert _url(campaign, "progress/") not in page  # nothing left to follow


def test_remind_is_refused_unless_running_and_reports_nobody_left(boss):
    campaign = svc.campaign_create(name="later", text="x", scheduled_at=timezone.now() + timedelta(hours=3))
    page = _body(boss.post(_url(campaign, "remind/"), follow=True))
    assert "Only a running campaign can be reminded." in page
    running = _running_campaign()
    MassMessage.objects.filter(campaign=running, status="created").update(status="done")  # nobody to remind
    page = _body(boss.post(_url(running, "remind/"), follow=True))
    assert "No sender is left to remind" in page


def test_not_found_wrong_method_and_csrf(boss, django_user_model):
    assert boss.get("/admin/console/campaigns/999/").status_code == 404
    assert boss.get("/admin/console/campaigns/999/progress/").status_code == 404
    assert boss.post("/admin/console/campaigns/999/cancel/").status_code == 404
    campaign = svc.campaign_create(name="c", text="x")
    assert boss.get(_url(campaign, "cancel/")).status_code == 405
    assert boss.post(_url(campaign)).status_code == 405
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(django_user_model.objects.get(username="boss"))
    assert strict.post(_url(campaign, "cancel/")).status_code == 403
    assert Campaign.objects.get(id=campaign.id).status == Campaign.Status.DRAFT


def test_permissions_view_and_change(client, django_user_model):
    campaign = svc.campaign_create(name="c", text="x", scheduled_at=timezone.now() + timedelta(hours=3))
    assert client.get(_url(campaign)).status_code == 302  # anonymous: to the login page
    clerk = django_user_model.objects.create_user("clerk", password="pw", is_staff=True)
    client.force_login(clerk)
    assert client.get(_url(campaign)).status_code == 403
    assert client.get(_url(campaign, "progress/")).status_code == 403
    clerk.user_permissions.add(Permission.objects.get(codename="view_campaign", content_type__app_label="crm"))
    client.force_login(clerk)
    page = client.get(_url(campaign))
    assert page.status_code == 200 and 'data-testid="cancel-form"' not in _body(page)  # no buttons without change
    assert client.post(_url(campaign, "cancel/")).status_code == 403
    assert client.post(_url(campaign, "remind/")).status_code == 403
    assert Campaign.objects.get(id=campaign.id).status == Campaign.Status.SCHEDULED


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_campaign_delivering_through_the_worker_reaches_100_percent(sim, celery_worker, boss):  # noqa: F811
    """Launched as beat launches it, sent by the worker to the simulator, confirmed by the simulated staff, results
    read by beat's poll task: the live block goes from 0 % to 100 % and stops polling."""
    from crm.tasks.campaigns import launch_due_campaigns, poll_mass_message_results
    from tests.conftest import wait_for
    from tests.crm.campaigns.conftest import befriend

    sim.call("PATCH", "corp", confirm_delay_seconds=0)  # staff confirm at once
    sim.member("erin")
    erin = make_staff("erin")
    for i in range(3):
        befriend(sim, erin, f"Shopper {i}")
    campaign = svc.campaign_create(name="live", text="Tonight only", scheduled_at=timezone.now())
    body = _body(boss.get(_url(campaign, "progress/")))
    assert 'data-percent="0"' in body and 'data-final="false"' in body

    launch_due_campaigns.delay()  # beat's launcher

    def progress() -> str:
        poll_mass_message_results.delay()  # beat's result poll
        return _body(boss.get(_url(campaign, "progress/")))

    def complete() -> str | None:
        body = progress()
        return body if 'data-percent="100"' in body else None

    body = wait_for(complete, timeout=45, interval=0.5, message="every recipient delivered")
    for key, value in {"planned": 3, "sent": 3, "confirmed": 3, "delivered": 3, "failed": 0}.items():
        assert f'data-testid="figure-{key}">{value}<' in body, key
    wait_for(lambda: 'data-final="true"' in progress(), timeout=20, message="campaign done")


@pytest.mark.parametrize(("role", "view", "change"), [("admin", 200, True), ("marketing", 200, True),
                                                     ("store_manager", 403, False)])
def test_roles(client, django_user_model, role, view, change):
    from django.contrib.auth.models import Group

    campaign = svc.campaign_create(name="c", text="x", scheduled_at=timezone.now() + timedelta(hours=3))
    user = django_user_model.objects.create_user(f"{role}-user", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client.force_login(user)
    response = client.get(_url(campaign))
    assert response.status_code == view
    assert client.post(_url(campaign, "cancel/")).status_code == (302 if change else 403)
    assert Campaign.objects.get(id=campaign.id).status == ("cancelled" if change else "scheduled")
