"""The console frame in Chromium: sign in through the form and see the sidebar by job; tag a contact from its
admin page; compose and schedule a campaign from the console."""

from __future__ import annotations

import pytest
from django.utils import timezone

from crm.models import Campaign, Contact, ContactEvent, ContactTag
from crm.services.tags import tag_ensure
from tests.crm.campaigns.conftest import make_contact, make_staff

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]

SECTIONS = ["Dashboard", "Contacts", "Channels", "Groups", "Campaigns", "Red packets", "Loyalty", "Data sources",
            "Staff", "System"]


def _sections(page) -> list[str]:
    return [t.strip() for t in page.locator("#nav-sidebar-apps h2").all_inner_texts()]


def test_sign_in_and_see_the_sidebar_by_job(console_page, console_user):
    page = console_page()
    assert _sections(page) == SECTIONS
    sidebar = page.locator("#nav-sidebar-apps")
    assert sidebar.locator("a", has_text="Red-packet pools").is_visible()
    page.click('#nav-sidebar-apps a:has-text("Health and queues")')
    page.wait_for_selector('[data-testid="system-page"]')
    assert page.locator('[data-testid="queue-depths"]').inner_text().count("callbacks") == 1

    clerk = console_user("clerk", superuser=False, perms=["crm.view_contact", "crm.view_channel"])
    page = console_page(clerk)
    assert _sections(page) == ["Dashboard", "Contacts", "Channels"]


def test_open_a_contact_and_add_a_tag(console_page, live_url):
    contact = Contact.objects.create(external_userid="wmBROWSER1", name="Mei")
    gold = tag_ensure("Tier", "Gold")
    page = console_page()
    page.click('#nav-sidebar-apps a:has-text("Contacts") >> nth=0')
    assert page.locator("#result_list").inner_text().count("wmBROWSER1") == 1
    page.goto(f"{live_url}/admin/crm/contact/{contact.pk}/change/")
    page.wait_for_selector("#id_add_tags")
    page.select_option("#id_add_tags", str(gold.pk))
    page.click('button[name="_continue"]')
    page.wait_for_selector(".messagelist, [role='alert'], #content")
    assert ContactTag.objects.filter(contact=contact, tag=gold).exists()
    assert ContactEvent.objects.filter(contact=contact, kind=ContactEvent.Kind.TAGGED).count() == 1
    assert "Tier/Gold" in page.locator("#contact_tags-group").inner_text()


def test_compose_and_schedule_a_campaign(console_page):
    make_contact(make_staff())  # someone to reach: a campaign whose audience is empty is refused
    when = timezone.localtime(timezone.now() + timezone.timedelta(days=1)).replace(second=0, microsecond=0)
    page = console_page()
    page.goto(page.url.rstrip("/") + "/crm/campaign/add/")
    page.fill("#id_name", "Tonight")
    page.fill("#id_text", "20% off tonight only")
    page.check('input[name="segment_source"][value="inline"]')  # everyone: an empty definition
    page.fill("#id_scheduled_at_0", when.strftime("%Y-%m-%d"))
    page.fill("#id_scheduled_at_1", when.strftime("%H:%M:%S"))
    page.click('button[name="_save"]')
    page.wait_for_url("**/admin/console/campaigns/*/")  # saved: the campaign's own page
    campaign = Campaign.objects.get(name="Tonight")
    assert campaign.status == Campaign.Status.SCHEDULED and campaign.scheduled_at == when
    page.goto(page.url.split("/admin/")[0] + "/admin/crm/campaign/")
    assert "Scheduled" in page.locator("#result_list").inner_text()
