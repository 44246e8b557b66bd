"""The campaign compose form (the admin's add/change form, which the campaign service validates) and the
campaign screens around it, through Django's test client: each target, attachment and schedule kind created
through the form; each bad input shown at its field with nothing created; the preview (WeChat bubble, audience
count, next occurrences in Asia/Shanghai); the runs table and each run's page; pause, resume, cancel and send now
through the services, with CSRF and the marketing role's permissions."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from crm.models import Campaign, CampaignRecipient, CampaignRun, CustomerGroup, GroupMember, Segment
from crm.services import campaigns as svc
from tests.crm.campaigns.conftest import make_contact, make_staff

pytestmark = pytest.mark.django_db

ADD = "/admin/crm/campaign/add/"
PREVIEW = "/admin/console/campaigns/preview/"
NO_POOL = {"red_packet_pool-TOTAL_FORMS": "0", "red_packet_pool-INITIAL_FORMS": "0",
           "red_packet_pool-MIN_NUM_FORMS": "0", "red_packet_pool-MAX_NUM_FORMS": "1"}
# A PNG's signature and a few bytes: what the service's magic-byte check takes as an image.
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
APPID = "wx1234567890abcdef"


@pytest.fixture
def world():
    """Two consenting customers followed by alice, one tagged VIP-ish by a saved segment; two active groups
    (one VIP) owned by alice, and a dismissed group the picker must not offer."""
    alice = make_staff("alice", name="Alice")
    first = make_contact(alice, name="Ann")
    make_contact(alice, name="Ben")
    # A saved segment as the builder saves it (crm.services.saved_segments is the segments part's).
    segment = Segment.objects.create(name="Both", definition={"field": "staff", "op": "in", "value": ["alice"]},
                                     last_count=2)
    shop = CustomerGroup.objects.create(chat_id="wrshop", name="Shop fans", owner=alice)
    vip = CustomerGroup.objects.create(chat_id="wrvip", name="VIP club", owner=alice, is_vip=True)
    CustomerGroup.objects.create(chat_id="wrgone", name="Gone", owner=alice, status="dismissed")
    for group in (shop, vip):
        GroupMember.objects.create(group=group, contact=first, member_id=first.external_userid)
    return {"alice": alice, "segment": Segment.objects.get(id=segment.id), "shop": shop, "vip": vip}


def _form(**fields) -> dict:
    data = {"name": "Double 11", "text": "Hello\nfrom the brand", "attachment": "", "target": "segment",
            "segment_source": "inline", "segment": "{}", "recurrence": "once", "scheduled_at_0": "",
            "scheduled_at_1": "", "recur_weekday": "", "recur_day": "", "recur_time": "", "recur_until_0": "",
            "recur_until_1": "", "link_title": "", "link_url": "", "link_desc": "", "miniprogram_appid": "",
            "miniprogram_page": "", "miniprogram_title": "", **NO_POOL}
    data.update(fields)
    return data


def _local(when: datetime, name: str = "scheduled_at") -> dict:
    when = timezone.localtime(when)
    return {f"{name}_0": when.strftime("%Y-%m-%d"), f"{name}_1": when.strftime("%H:%M:%S")}


def _errors(response) -> dict:
    return response.context["adminform"].form.errors


def test_the_form_offers_saved_segments_active_groups_and_the_preview(admin_client, world):
    page = admin_client.get(ADD)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Both (2 customers at last count)" in html
    assert "Shop fans · Alice · 1 members" in html and "VIP club · Alice · 1 members" in html
    assert "Gone" not in html  # a dismissed group is not offered
    assert 'data-testid="compose-preview"' in html and 'data-url="/admin/console/campaigns/preview/"' in html
    assert "console/campaign_compose.js" in html


def test_create_to_a_saved_segment_with_a_link_scheduled_once(admin_client, world):
    when = timezone.now().replace(microsecond=0) + timedelta(days=1)
    response = admin_client.post(ADD, _form(
        segment_source="saved", saved_segment=str(world["segment"].id), attachment="link", link_title="Sale",
        link_url="https://example.com/sale", link_desc="Up to 50 %", **_local(when)))
    assert response.status_code == 302, _errors(response) if response.status_code == 200 else ""
    campaign = Campaign.objects.get()
    assert response["Location"] == f"/admin/console/campaigns/{campaign.id}/"  # Save opens the campaign page
    assert (campaign.target, campaign.saved_segment_id, campaign.segment) == ("segment", world["segment"].id, {})
    assert (campaign.attachment, campaign.link_title, campaign.link_url) == ("link", "Sale", "https://example.com/sale")
    assert campaign.scheduled_at == when and campaign.status == Campaign.Status.SCHEDULED
    assert campaign.text == "Hello\nfrom the brand"


def test_create_to_an_inline_segment_text_only_as_a_draft(admin_client, world):
    definition = '{"field": "staff", "op": "in", "value": ["alice"]}'
    response = admin_client.post(ADD, _form(segment=definition))
    assert response.status_code == 302
    campaign = Campaign.objects.get()
    assert campaign.saved_segment_id is None and campaign.segment["field"] == "staff"
    assert campaign.attachment == "" and campaign.status == Campaign.Status.DRAFT


def test_create_to_chosen_groups_with_a_mini_program_monthly(admin_client, world):
    response = admin_client.post(ADD, {
        **_form(target="groups", group_chat_ids=["wrshop", "wrvip"], attachment="miniprogram",
                miniprogram_appid=APPID, miniprogram_page="pages/sale/index", miniprogram_title="11.11 sale",
                recurrence="monthly", recur_day="11", recur_time="10:00"),
        "image": SimpleUploadedFile("cover.png", PNG, content_type="image/png"),
    })
    assert response.status_code == 302, _errors(response) if response.status_code == 200 else ""
    campaign = Campaign.objects.get()
    assert campaign.target == "groups" and campaign.group_chat_ids == ["wrshop", "wrvip"]
    assert campaign.attachment == "miniprogram" and campaign.miniprogram_appid == APPID
    assert campaign.image and campaign.recurrence == "monthly" and campaign.recur_day == 11
    assert campaign.recur_time == time(10, 0) and campaign.scheduled_at is None
    assert campaign.status == Campaign.Status.SCHEDULED


def test_create_to_all_vip_groups_with_an_image_weekly_until(admin_client, world):
    until = timezone.now().replace(microsecond=0, second=0) + timedelta(days=60)
    response = admin_client.post(ADD, {
        **_form(target="vip_groups", attachment="image", recurrence="weekly", recur_weekday="4",
                recur_time="20:00", **_local(until, "recur_until")),
        "image": SimpleUploadedFile("poster.png", PNG, content_type="image/png"),
    })
    assert response.status_code == 302, _errors(response) if response.status_code == 200 else ""
    campaign = Campaign.objects.get()
    assert (campaign.target, campaign.attachment, campaign.recurrence) == ("vip_groups", "image", "weekly")
    assert campaign.recur_weekday == 4 and campaign.recur_time == time(20, 0) and campaign.recur_until == until
    page = admin_client.get(response["Location"]).content.decode()
    assert "Every Friday at 20:00" in page
    assert page.count('data-at="') >= 3  # the next occurrences are listed


@pytest.mark.parametrize(("fields", "field"), [
    ({"text": ""}, "text"),
    ({"target": "groups"}, "group_chat_ids"),  # no group chosen: no audience
    ({"segment": '{"field": "staff", "op": "in", "value": ["nobody"]}'}, "segment"),
    ({"segment": '{"field": "colour", "op": "is", "value": "red"}'}, "segment"),
    ({"segment": '{"field": "added", "op": "after", "value": "not a date"}'}, "segment"),
    ({"segment_source": "saved"}, "saved_segment"),  # a saved segment chosen as the source, none picked
    ({"attachment": "link", "link_url": "https://example.com"}, "link_title"),
    ({"attachment": "link", "link_title": "x", "link_url": "ftp://example.com"}, "link_url"),
    ({"attachment": "miniprogram", "miniprogram_appid": "nope", "miniprogram_page": "p",
      "miniprogram_title": "t"}, "miniprogram_appid"),
    ({"recurrence": "weekly", "recur_time": "20:00"}, "recur_weekday"),
    ({"recurrence": "monthly", "recur_day": "11"}, "recur_time"),
])
def test_bad_input_is_shown_at_its_field_and_nothing_is_created(admin_client, world, fields, field):
    response = admin_client.post(ADD, _form(**fields))
    assert response.status_code == 200
    errors = _errors(response)
    assert errors, "the form was accepted"
    if field is not None:
        assert field in errors, errors
        assert f'id="id_{field}' in response.content.decode()
    assert not Campaign.objects.exists()


def test_a_past_schedule_and_an_image_of_the_wrong_type_are_refused_at_their_fields(admin_client, world):
    response = admin_client.post(ADD, _form(**_local(timezone.now() - timedelta(hours=3))))
    assert "scheduled_at" in _errors(response)
    response = admin_client.post(ADD, {**_form(attachment="image"),
                                       "image": SimpleUploadedFile("x.png", b"GIF89a not a png", "image/png")})
    assert "image" in _errors(response)
    until = timezone.now() + timedelta(hours=1)  # before the first Friday 20:00 that is at least a day away
    response = admin_client.post(ADD, _form(recurrence="weekly", recur_weekday=str((timezone.localtime().weekday()
                                                                                    + 3) % 7),
                                            recur_time="20:00", **_local(until, "recur_until")))
    assert "recur_until" in _errors(response)
    assert not Campaign.objects.exists()


def test_edit_a_campaign_from_once_to_monthly(admin_client, world):
    campaign = svc.campaign_create(name="Draft", text="x")
    url = reverse("admin:crm_campaign_change", args=[campaign.id])
    form = admin_client.get(url).context["adminform"].form
    assert form.initial["segment_source"] == "inline" and form.initial["recurrence"] == "once"
    response = admin_client.post(url, _form(name="Draft", text="x", recurrence="monthly", recur_day="31",
                                            recur_time="09:30"))
    assert response.status_code == 302 and response["Location"] == f"/admin/console/campaigns/{campaign.id}/"
    campaign.refresh_from_db()
    assert (campaign.recurrence, campaign.recur_day, campaign.status) == ("monthly", 31, Campaign.Status.SCHEDULED)
    page = admin_client.get(response["Location"]).content.decode()
    assert "On day 31 of each month at 09:30" in page


# --- preview ---------------------------------------------------------------------------------------------------


def test_preview_shows_the_bubble_with_its_line_breaks_the_link_card_and_the_customer_count(admin_client, world):
    response = admin_client.post(PREVIEW, _form(segment_source="saved", saved_segment=str(world["segment"].id),
                                                attachment="link", link_title="Sale <b>", link_url="https://e.com/s",
                                                recurrence="weekly", recur_weekday="4", recur_time="20:00"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html
    assert 'data-testid="bubble-text">Hello<br>from the brand<' in html
    assert 'data-testid="bubble-link"' in html and "Sale &lt;b&gt;" in html  # escaped
    assert 'data-testid="audience-count" data-count="2" data-kind="customers">2 customers<' in html
    fridays = [line.split('"')[0] for line in html.split('data-at="')[1:]]
    assert len(fridays) == 3
    for stamp in fridays:
        moment = datetime.fromisoformat(stamp)
        assert moment.utcoffset() == timedelta(hours=8)  # shown in Asia/Shanghai
        assert (moment.weekday(), moment.hour, moment.minute) == (4, 20, 0)
    assert not Campaign.objects.exists()  # a preview writes nothing


def test_preview_of_groups_counts_groups_and_shows_the_uploaded_image(admin_client, world):
    html = admin_client.post(PREVIEW, {**_form(target="groups", group_chat_ids=["wrshop", "wrvip"],
                                               attachment="image"),
                                       "image": SimpleUploadedFile("p.png", PNG, content_type="image/png")},
                             ).content.decode()
    assert 'data-kind="groups">2 groups<' in html
    assert 'data-testid="bubble-image" src="data:image/png;base64,' in html
    html = admin_client.post(PREVIEW, _form(target="vip_groups", attachment="miniprogram",
                                            miniprogram_title="Mini", miniprogram_page="p/i")).content.decode()
    assert 'data-kind="groups">1 group<' in html and 'data-testid="bubble-miniprogram"' in html and "Mini" in html


def test_preview_needs_the_view_permission_and_csrf(client, django_user_model, world):
    user = django_user_model.objects.create_user("clerk", password="pw", is_staff=True)
    client.force_login(user)
    assert client.post(PREVIEW, _form()).status_code == 403
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(django_user_model.objects.create_user("b2", password="pw", is_staff=True,
                                                             is_superuser=True))
    assert strict.post(PREVIEW, _form()).status_code == 403


# --- runs, pause / resume / cancel ------------------------------------------------------------------------------


def _campaign_with_runs(world) -> tuple[Campaign, CampaignRun, CampaignRun]:
    campaign = svc.campaign_create(name="Weekly", text="hi", saved_segment_id=world["segment"].id,
                                   recurrence="weekly", recur_weekday=4, recur_time="20:00")
    done = CampaignRun.objects.create(campaign=campaign, occurrence=datetime(2026, 11, 20, 12, tzinfo=UTC),
                                      status=CampaignRun.Status.DONE)
    live = CampaignRun.objects.create(campaign=campaign, occurrence=datetime(2026, 11, 27, 12, tzinfo=UTC),
                                      status=CampaignRun.Status.SENDING)
    alice = world["alice"]
    plan = {done: ["delivered", "delivered", "over_quota", "excluded", "expired", "not_friend"],
            live: ["pending", "delivered"]}
    for run, statuses in plan.items():
        for status in statuses:
            contact = make_contact(alice)
            CampaignRecipient.objects.create(campaign=campaign, run=run, contact=contact, status=status,
                                             external_userid=contact.external_userid, sender=alice)
    return campaign, done, live


def _row(html: str, run: CampaignRun) -> str:
    return html.split(f'data-run-id="{run.id}"', 1)[1].split("</tr>", 1)[0]


def test_runs_table_counts_each_run_and_links_its_page(admin_client, world):
    campaign, done, live = _campaign_with_runs(world)
    html = admin_client.get(f"/admin/console/campaigns/{campaign.id}/").content.decode()
    row = _row(html, done)
    for col, n in {"planned": 6, "delivered": 2, "over_quota": 1, "excluded": 1, "expired": 1, "failed": 1}.items():
        assert f'data-col="{col}">{n}<' in row, col
    assert "2026-11-20 20:00" in row  # the occurrence in Asia/Shanghai
    assert f'href="/admin/console/campaigns/{campaign.id}/runs/{done.id}/"' in row
    assert 'data-testid="run-pause"' not in row and 'data-testid="run-cancel"' not in row  # done: no control
    live_row = _row(html, live)
    assert 'data-testid="run-pause"' in live_row and 'data-testid="run-cancel"' in live_row
    assert 'data-testid="pause-form"' in html  # the recurring campaign's own pause
    # The live block's answer carries the runs table out of band, so new runs show up without a reload.
    fragment = admin_client.get(f"/admin/console/campaigns/{campaign.id}/progress/").content.decode()
    assert '<div id="campaign-runs" data-testid="campaign-runs" hx-swap-oob="true">' in fragment
    assert 'data-testid="run-pause"' in _row(fragment, live)  # the controls come along
    run_fragment = admin_client.get(f"/admin/console/campaigns/{campaign.id}/runs/{live.id}/progress/").content
    assert b'id="campaign-run-head" data-testid="run-head" data-status="sending" hx-swap-oob="true"' in run_fragment

    page = admin_client.get(f"/admin/console/campaigns/{campaign.id}/runs/{live.id}/").content.decode()
    assert 'data-testid="figure-planned">2<' in page and 'data-testid="figure-delivered">1<' in page
    assert f'hx-get="/admin/console/campaigns/{campaign.id}/runs/{live.id}/progress/"' in page
    assert 'data-percent="50"' in page
    CampaignRecipient.objects.filter(run=done, status="excluded").update(reason="consent_withdrawn")
    page = admin_client.get(f"/admin/console/campaigns/{campaign.id}/runs/{done.id}/").content.decode()
    assert 'data-testid="figure-over_quota">1<' in page and 'data-testid="figure-expired">1<' in page
    assert "Marketing consent withdrawn: <strong" in page  # why the excluded were left out
    other = svc.campaign_create(name="Other", text="x")
    assert admin_client.get(f"/admin/console/campaigns/{other.id}/runs/{live.id}/").status_code == 404


def test_pause_resume_and_cancel_a_run(admin_client, world):
    campaign, done, live = _campaign_with_runs(world)
    base = f"/admin/console/campaigns/{campaign.id}/runs/{live.id}"
    response = admin_client.post(f"{base}/pause/")
    assert response.status_code == 302 and response["Location"] == f"/admin/console/campaigns/{campaign.id}/"
    assert CampaignRun.objects.get(id=live.id).status == CampaignRun.Status.PAUSED
    response = admin_client.post(f"{base}/resume/", {"next": "run"})
    assert response["Location"] == f"{base}/"
    assert CampaignRun.objects.get(id=live.id).status != CampaignRun.Status.PAUSED
    admin_client.post(f"{base}/cancel/")
    assert CampaignRun.objects.get(id=live.id).status == CampaignRun.Status.CANCELLED
    page = admin_client.post(f"/admin/console/campaigns/{campaign.id}/runs/{done.id}/cancel/",
                             follow=True).content.decode()
    assert "A done run cannot be cancelled." in page  # the service's refusal, said on the page
    assert admin_client.post(f"{base}/explode/").status_code == 404
    assert admin_client.get(f"{base}/pause/").status_code == 405


def test_pause_and_resume_a_recurring_campaign(admin_client, world):
    campaign, _done, _live = _campaign_with_runs(world)
    admin_client.post(f"/admin/console/campaigns/{campaign.id}/pause/")
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.PAUSED
    html = admin_client.get(f"/admin/console/campaigns/{campaign.id}/").content.decode()
    assert 'data-testid="resume-form"' in html and 'data-testid="pause-form"' not in html
    admin_client.post(f"/admin/console/campaigns/{campaign.id}/resume/")
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SCHEDULED


def test_send_now_starts_a_run(admin_client, world, monkeypatch):
    from crm.services import campaign_runs

    launch = campaign_runs.campaign_launch
    monkeypatch.setattr(campaign_runs, "campaign_launch", lambda campaign_id: launch(campaign_id, enqueue=False))
    campaign = svc.campaign_create(name="Now", text="x", segment={"field": "staff", "op": "in", "value": ["alice"]})
    response = admin_client.post(f"/admin/console/campaigns/{campaign.id}/launch/", follow=True)
    assert response.status_code == 200
    [run] = CampaignRun.objects.filter(campaign=campaign)
    assert run.recipients.count() == 2
    assert f'data-run-id="{run.id}"' in response.content.decode()


@pytest.mark.parametrize(("role", "allowed"), [("marketing", True), ("store_manager", False)])
def test_controls_need_the_change_permission_and_csrf(client, django_user_model, world, role, allowed):
    campaign, _done, live = _campaign_with_runs(world)
    user = django_user_model.objects.create_user(f"{role}-1", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    base = f"/admin/console/campaigns/{campaign.id}"
    assert strict.post(f"{base}/runs/{live.id}/pause/").status_code == 403  # no CSRF token
    client.force_login(user)
    assert client.post(f"{base}/runs/{live.id}/pause/").status_code == (302 if allowed else 403)
    assert client.post(f"{base}/pause/").status_code == (302 if allowed else 403)
    assert client.post(f"{base}/launch/").status_code == (302 if allowed else 403)
    live.refresh_from_db()
    assert live.status == (CampaignRun.Status.PAUSED if allowed else CampaignRun.Status.SENDING)
    assert client.get(f"{base}/runs/{live.id}/").status_code == (200 if allowed else 403)
