"""Every console write goes through a service: refusals are form errors or messages (never a 500, nothing written),
state-machine fields are read-only once they matter, and a campaign scheduled here is launched by beat."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from crm.models import Campaign, ConsentRecord, Contact, ContactEvent, ContactTag, RedPacketPool, Staff
from crm.models.staff import Handover
from crm.models.tags import Tag, TagGroup
from crm.services import campaign_runs
from crm.services import campaigns as campaign_services
from crm.tasks.campaigns import launch_due_campaigns
from tests.crm.campaigns.conftest import later, make_contact, make_staff

pytestmark = pytest.mark.django_db

NO_POOL = {"red_packet_pool-TOTAL_FORMS": "0", "red_packet_pool-INITIAL_FORMS": "0",
           "red_packet_pool-MIN_NUM_FORMS": "0", "red_packet_pool-MAX_NUM_FORMS": "1"}


def _local(when):
    when = timezone.localtime(when)
    return {"scheduled_at_0": when.strftime("%Y-%m-%d"), "scheduled_at_1": when.strftime("%H:%M:%S")}


def _campaign_form(**fields) -> dict:
    data = {"name": "Double 11", "text": "Hello from the brand", "segment": "{}", "link_title": "", "link_url": "",
            "link_desc": "", "scheduled_at_0": "", "scheduled_at_1": "", **NO_POOL}
    data.update(fields)
    return data


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def test_campaign_scheduled_in_the_console_is_launched_by_beat_at_its_time(admin_client):
    make_contact(make_staff())
    when = timezone.now().replace(microsecond=0) + timedelta(seconds=5)
    response = admin_client.post(reverse("admin:crm_campaign_add"), _campaign_form(**_local(when)))
    assert response.status_code == 302, response.content.decode()[:3000]
    campaign = Campaign.objects.get(name="Double 11")
    assert campaign.status == Campaign.Status.SCHEDULED and campaign.scheduled_at == when
    assert timezone.now() < when and launch_due_campaigns() == []  # not yet its time
    time.sleep(max(0.0, (when - timezone.now()).total_seconds()) + 0.1)
    assert launch_due_campaigns() == [campaign.id]
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.RUNNING and campaign.launched_at is not None
    [run] = campaign.runs.all()
    assert run.occurrence == when and run.status == "planning"  # planning is queued on the pushes queue
    campaign_runs.run_plan(run.id, enqueue=False)  # what the pushes worker does
    assert campaign.recipients.count() == 1


def test_rescheduling_a_draft_in_the_console_schedules_it(admin_client):
    draft = campaign_services.campaign_create(name="Draft", text="x")
    url = reverse("admin:crm_campaign_change", args=[draft.id])
    response = admin_client.post(url, _campaign_form(name="Draft", text="x", **_local(later(hours=2))))
    assert response.status_code == 302
    draft.refresh_from_db()
    assert draft.status == Campaign.Status.SCHEDULED


@pytest.mark.parametrize(("fields", "field", "message"), [
    ({"text": ""}, "text", "This field is required."),
    ({"segment": '{"tags": [999999]}'}, "segment", "Unknown tag: 999999."),
    ({"segment": '{"colour": "red"}'}, "segment", "Unknown segment key: colour."),
    ({"segment": "{not json"}, "segment", "Enter a valid JSON."),
    ({"link_url": "https://example.com/x"}, "link_title", "link_title is required with link_url."),
])
def test_bad_campaign_input_is_a_field_error_and_writes_nothing(admin_client, fields, field, message):
    response = admin_client.post(reverse("admin:crm_campaign_add"), _campaign_form(**fields))
    assert response.status_code == 200
    assert message in response.context["adminform"].form.errors[field]
    assert not Campaign.objects.exists()


def test_past_schedule_is_refused_on_its_field(admin_client):
    response = admin_client.post(reverse("admin:crm_campaign_add"), _campaign_form(**_local(later(hours=-3))))
    assert response.status_code == 200
    assert "scheduled_at is in the past." in response.context["adminform"].form.errors["scheduled_at"]
    assert not Campaign.objects.exists()


def test_running_campaign_keeps_its_text_segment_and_status(admin_client):
    make_contact(make_staff())
    campaign = campaign_services.campaign_create(name="Live", text="sent text")
    campaign_runs.campaign_launch(campaign.id, enqueue=False)
    url = reverse("admin:crm_campaign_change", args=[campaign.id])
    form = admin_client.get(url).context["adminform"].form
    assert "text" not in form.fields and "segment" not in form.fields and "status" not in form.fields
    admin_client.post(url, _campaign_form(name="Live", text="edited", segment='{"vip": true}', status="draft"))
    campaign.refresh_from_db()
    assert (campaign.text, campaign.segment, campaign.status) == ("sent text", {}, Campaign.Status.RUNNING)


def test_cancelling_a_finished_campaign_says_why(admin_client):
    done = campaign_services.campaign_create(name="Nobody", text="x")
    campaign_runs.campaign_launch(done.id, enqueue=False)  # nobody reachable: done at once
    assert Campaign.objects.get(id=done.id).status == Campaign.Status.DONE
    response = admin_client.post(reverse("admin:crm_campaign_changelist"),
                                 {"action": "cancel", "_selected_action": [done.id]}, follow=True)
    assert response.status_code == 200
    assert any("A done campaign cannot be cancelled." in m for m in _messages(response))
    assert Campaign.objects.get(id=done.id).status == Campaign.Status.DONE


def _pool_form(**fields) -> dict:
    expires = timezone.localtime(later(days=2))
    data = {"red_packet_pool-TOTAL_FORMS": "1", "red_packet_pool-INITIAL_FORMS": "0",
            "red_packet_pool-MIN_NUM_FORMS": "0", "red_packet_pool-MAX_NUM_FORMS": "1",
            "red_packet_pool-0-budget_fen": "1000", "red_packet_pool-0-count": "5", "red_packet_pool-0-mode": "lucky",
            "red_packet_pool-0-min_fen": "100", "red_packet_pool-0-max_fen": "500",
            "red_packet_pool-0-expires_at_0": expires.strftime("%Y-%m-%d"),
            "red_packet_pool-0-expires_at_1": expires.strftime("%H:%M:%S"),
            "red_packet_pool-0-act_name": "Red packet", "red_packet_pool-0-wishing": "Thanks"}
    data.update({f"red_packet_pool-0-{k}": v for k, v in fields.items()})
    return data


def test_pool_with_min_above_max_gets_a_human_message(admin_client):
    form = {**_campaign_form(), **_pool_form(min_fen="600", max_fen="300")}
    response = admin_client.post(reverse("admin:crm_campaign_add"), form)
    assert response.status_code == 200
    html = response.content.decode()
    assert "min_fen must not exceed max_fen." in html
    assert "rp_pool" not in html and "Constraint" not in html
    assert not Campaign.objects.exists() and not RedPacketPool.objects.exists()


def test_campaign_with_pool_is_created_through_the_services(admin_client):
    response = admin_client.post(reverse("admin:crm_campaign_add"), {**_campaign_form(), **_pool_form()})
    assert response.status_code == 302, response.content.decode()[:2000]
    pool = RedPacketPool.objects.get(campaign__name="Double 11")
    assert (pool.budget_fen, pool.count, pool.status) == (1000, 5, RedPacketPool.Status.DRAFT)


def test_active_pool_budget_count_and_bounds_are_read_only(admin_client):
    campaign = campaign_services.campaign_create(name="RP", text="x", red_packet={
        "budget_fen": 1000, "count": 5, "expires_at": later(hours=3)})
    campaign_runs.campaign_launch(campaign.id, enqueue=False)
    pool = RedPacketPool.objects.get(campaign=campaign)
    assert pool.status == RedPacketPool.Status.ACTIVE
    url = reverse("admin:crm_redpacketpool_change", args=[pool.id])
    form = admin_client.get(url).context["adminform"].form
    assert not {"budget_fen", "count", "min_fen", "max_fen"} & set(form.fields)
    admin_client.post(url, {"budget_fen": "99999", "count": "1", "min_fen": "100", "max_fen": "20000"})
    pool.refresh_from_db()
    assert (pool.budget_fen, pool.count) == (1000, 5)
    inline = admin_client.get(reverse("admin:crm_campaign_change", args=[campaign.id])).context["inline_admin_formsets"]
    assert not {"budget_fen", "count"} & set(inline[0].formset.forms[0].fields)


def test_draft_pool_edit_goes_through_the_service_and_refuses_bad_bounds(admin_client):
    campaign = campaign_services.campaign_create(name="RP", text="x", red_packet={
        "budget_fen": 1000, "count": 5, "expires_at": later(hours=3)})
    pool = RedPacketPool.objects.get(campaign=campaign)
    expires = timezone.localtime(pool.expires_at)
    base = {"budget_fen": "1000", "count": "5", "mode": "lucky", "min_fen": "100", "max_fen": "20000",
            "expires_at_0": expires.strftime("%Y-%m-%d"), "expires_at_1": expires.strftime("%H:%M:%S"),
            "act_name": "Red packet", "wishing": "Thank you!"}
    url = reverse("admin:crm_redpacketpool_change", args=[pool.id])
    response = admin_client.post(url, {**base, "min_fen": "900", "max_fen": "200"})
    assert response.status_code == 200 and "min_fen must not exceed max_fen." in response.content.decode()
    assert "rp_pool_min_le_max" not in response.content.decode()
    assert admin_client.post(url, {**base, "budget_fen": "2000"}).status_code == 302
    pool.refresh_from_db()
    assert pool.budget_fen == 2000


def test_consent_history_is_append_only(admin_client):
    contact = Contact.objects.create(external_userid="wmC1", name="C")
    response = admin_client.post(reverse("admin:crm_consentrecord_add"), {
        "contact": contact.pk, "purpose": "marketing", "granted": "on", "policy_version": "2026-01"})
    assert response.status_code == 302
    admin_client.post(reverse("admin:crm_consentrecord_add"), {
        "contact": contact.pk, "purpose": "marketing", "policy_version": "2026-01"})  # a withdrawal
    records = list(ConsentRecord.objects.filter(contact=contact).order_by("version"))
    assert [(r.version, r.granted, r.source) for r in records] == [(1, True, "console:root"),
                                                                   (2, False, "console:root")]
    assert ContactEvent.objects.filter(contact=contact, kind=ContactEvent.Kind.CONSENT).count() == 2
    first = records[0]
    change = reverse("admin:crm_consentrecord_change", args=[first.pk])
    assert admin_client.post(change, {"contact": contact.pk, "purpose": "marketing"}).status_code == 403
    assert admin_client.post(reverse("admin:crm_consentrecord_delete", args=[first.pk]), {"post": "yes"}
                             ).status_code == 403
    first.refresh_from_db()
    assert first.granted is True and ConsentRecord.objects.count() == 2


def test_ledger_rows_cannot_be_changed_or_deleted(admin_client):
    from loyalty.models import PointsLedger
    from loyalty.services import card_get_or_create, points_adjust

    card = card_get_or_create(Contact.objects.create(external_userid="wmL1").pk)
    points_adjust(card_id=card.pk, delta=50, reason="welcome", idempotency_key="adj-1")
    row = PointsLedger.objects.get(card=card)
    assert admin_client.post(reverse("admin:loyalty_pointsledger_change", args=[row.pk]), {"delta": "9999"}
                             ).status_code == 403
    assert admin_client.post(reverse("admin:loyalty_pointsledger_delete", args=[row.pk]), {"post": "yes"}
                             ).status_code == 403
    assert admin_client.get(reverse("admin:loyalty_pointsledger_add")).status_code == 403
    row.refresh_from_db()
    assert row.delta == 50


def test_contact_tags_added_and_removed_through_the_tag_service(admin_client, django_capture_on_commit_callbacks):
    contact = Contact.objects.create(external_userid="wmT1", name="T")
    group = TagGroup.objects.create(name="Interest")
    tea, coffee = Tag.objects.create(group=group, name="tea"), Tag.objects.create(group=group, name="coffee")
    url = reverse("admin:crm_contact_change", args=[contact.pk])
    inlines = {"follows-TOTAL_FORMS": "0", "follows-INITIAL_FORMS": "0", "contact_tags-TOTAL_FORMS": "0",
               "contact_tags-INITIAL_FORMS": "0", "events-TOTAL_FORMS": "0", "events-INITIAL_FORMS": "0"}
    with django_capture_on_commit_callbacks() as pushes:
        response = admin_client.post(url, {**inlines, "add_tags": [tea.pk, coffee.pk]})
    assert response.status_code == 302, response.content.decode()[:3000]
    assert set(ContactTag.objects.filter(contact=contact).values_list("tag__name", flat=True)) == {"tea", "coffee"}
    assert len(pushes) == 2  # one push to WeCom queued per change, after commit
    inlines["contact_tags-INITIAL_FORMS"] = "0"
    admin_client.post(url, {**inlines, "remove_tags": [tea.pk]})
    assert list(ContactTag.objects.filter(contact=contact).values_list("tag__name", flat=True)) == ["coffee"]
    kinds = sorted(ContactEvent.objects.filter(contact=contact).values_list("kind", "data__tag"))
    assert kinds == [("tagged", "Interest/coffee"), ("tagged", "Interest/tea"), ("untagged", "Interest/tea")]


def test_resigned_handover_of_someone_still_active_is_refused(admin_client):
    bob, carol = Staff.objects.create(userid="bob"), Staff.objects.create(userid="carol", has_customer_contact=True)
    response = admin_client.post(reverse("admin:crm_handover_add"), {
        "kind": "resigned", "handover_staff": bob.pk, "takeovers": [carol.pk], "transfer_message": "",
        "include_groups": "on", "items-TOTAL_FORMS": 0, "items-INITIAL_FORMS": 0, "group_items-TOTAL_FORMS": 0,
        "group_items-INITIAL_FORMS": 0,
    })
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["handover_staff"]
    assert any("Use an on-the-job transfer." in e for e in errors)
    assert not Handover.objects.exists()


def test_csrf_is_enforced_on_console_writes(client, superuser):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(superuser)
    assert strict.post(reverse("admin:crm_campaign_add"), _campaign_form()).status_code == 403
    assert not Campaign.objects.exists()


def test_handovers_in_the_console_need_the_handover_permission(client):
    """The model's own permissions are not enough to move a leaver's customers: adding and starting a handover
    in the console need crm.handover_staff, as the API and the wizard do."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    from crm.services.roles import HANDOVER_STAFF

    user = get_user_model().objects.create_user("ops", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="crm", codename__endswith="handover"))
    client.force_login(user)
    leaver = make_staff("leaver")
    handover = Handover.objects.create(kind="resigned", handover_staff=leaver)
    changelist = reverse("admin:crm_handover_changelist")

    assert client.get(reverse("admin:crm_handover_add")).status_code == 403
    page = client.get(changelist)
    assert page.status_code == 200 and 'value="start"' not in page.content.decode()
    started = client.post(changelist, {"action": "start", "_selected_action": [handover.pk]})
    assert Handover.objects.get(pk=handover.pk).status == handover.status  # nothing started
    assert started.status_code in (200, 302)

    app_label, codename = HANDOVER_STAFF.split(".")
    user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    user = get_user_model().objects.get(pk=user.pk)  # a fresh permission cache
    client.force_login(user)
    assert client.get(reverse("admin:crm_handover_add")).status_code == 200
    assert 'value="start"' in client.get(changelist).content.decode()
