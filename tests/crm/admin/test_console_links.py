"""The admin reaches the console's product pages: each object's change view and its changelist row open its page
(unfold detail and row actions), the handover wizard is reached from Staff, Handovers and the sidebar for whoever may
hand over, and the dashboard's tiles open their lists for whoever may see them."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from crm.errors import ApplicationError
from crm.models import Campaign, Channel, Contact, RedPacketPool, Staff
from crm.models.staff import Handover
from crm.services.roles import MARKETING, STORE_MANAGER, roles_ensure
from crm.services.simulator import channel_simulate_adds
from tests.crm.campaigns.conftest import later

pytestmark = pytest.mark.django_db


def _objects() -> dict[str, int]:
    campaign = Campaign.objects.create(name="Spring", text="Hello")
    leaver = Staff.objects.create(userid="leaver", name="Leaver", status=Staff.Status.RESIGNED)
    return {
        "contact": Contact.objects.create(external_userid="wmLINK", name="Mei").pk,
        "channel": Channel.objects.create(name="Shanghai", state="store-sh-001", config_id="cfg1").pk,
        "campaign": campaign.pk,
        "redpacketpool": RedPacketPool.objects.create(campaign=campaign, budget_fen=1000, count=5,
                                                      expires_at=later(hours=2)).pk,
        "handover": Handover.objects.create(kind="resigned", handover_staff=leaver).pk,
    }


# model -> (the unfold action's url path, the console page it opens)
PAGES = {
    "contact": ("console-contact", "console:contact"),
    "channel": ("console-channel", "console:channel"),
    "campaign": ("console-campaign-detail", "console:campaign-detail"),
    "redpacketpool": ("console-pool", "console:pool"),
    "handover": ("console-handover-detail", "console:handover-detail"),
}


@pytest.mark.parametrize("model", sorted(PAGES))
def test_change_view_and_rows_open_the_console_page(admin_client, model):
    pk = _objects()[model]
    action_path, page = PAGES[model]
    action_url = f"/admin/crm/{model}/{pk}/{action_path}/"
    change = admin_client.get(reverse(f"admin:crm_{model}_change", args=[pk]))
    assert change.status_code == 200 and action_url in change.content.decode()  # the detail action's button
    rows = admin_client.get(reverse(f"admin:crm_{model}_changelist"))
    assert action_url in rows.content.decode()  # the row action, on the object's row
    opened = admin_client.get(action_url)
    assert opened.status_code == 302 and opened["Location"] == reverse(page, args=[pk])
    assert admin_client.get(opened["Location"]).status_code == 200


def test_a_staff_row_opens_the_wizard_on_the_leavers_customers(admin_client):
    _objects()
    leaver = Staff.objects.get(userid="leaver")
    listing = admin_client.get(reverse("admin:crm_staff_changelist")).content.decode()
    assert "/admin/crm/staff/console-handover/" in listing  # the list's "Handover wizard" button
    assert f"/admin/crm/staff/{leaver.pk}/console-handover/" in listing
    opened = admin_client.get(f"/admin/crm/staff/{leaver.pk}/console-handover/")
    assert opened["Location"] == reverse("console:handover") + "?step=customers&leaver=leaver"
    step = admin_client.get(opened["Location"])
    assert step.status_code == 200 and step.context["step"] == "customers"
    assert admin_client.get("/admin/crm/handover/console-handover/")["Location"] == reverse("console:handover")


def test_marketing_gets_no_handover_links(client, django_user_model):
    roles_ensure()
    ids = _objects()
    user = django_user_model.objects.create_user("mia", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=MARKETING))
    client.force_login(user)
    leaver = Staff.objects.get(userid="leaver")
    listing = client.get(reverse("admin:crm_staff_changelist"))
    assert listing.status_code == 200 and "console-handover" not in listing.content.decode()
    assert client.get(f"/admin/crm/staff/{leaver.pk}/console-handover/").status_code == 403
    assert "Handover wizard" not in client.get(reverse("admin:index")).content.decode()
    # ...but the pages of their own work, yes.
    assert client.get(f"/admin/crm/contact/{ids['contact']}/console-contact/").status_code == 302


def test_the_sidebar_offers_the_wizard_to_who_may_hand_over(admin_client):
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert f'href="{reverse("console:handover")}"' in html and "Handover wizard" in html


def test_dashboard_tiles_open_their_lists(admin_client):
    from django.utils import timezone

    campaign = Campaign.objects.create(name="Spring", text="Hello", status=Campaign.Status.DONE,
                                       launched_at=timezone.now())
    html = admin_client.get(reverse("admin:index")).content.decode()
    for url in ("admin:crm_contact_changelist", "admin:crm_followrelation_changelist",
                "admin:crm_callbackevent_changelist", "console:system", "admin:crm_channel_changelist",
                "admin:loyalty_card_changelist", "admin:loyalty_pointsledger_changelist"):
        assert f'href="{reverse(url)}"' in html, url
    assert f'href="{reverse("console:campaign-detail", args=[campaign.pk])}"' in html  # the funnel's row


def test_dashboard_links_only_what_the_user_may_open(client, django_user_model):
    roles_ensure()
    user = django_user_model.objects.create_user("sam", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=STORE_MANAGER))
    client.force_login(user)
    html = client.get(reverse("admin:index")).content.decode()
    assert f'href="{reverse("admin:loyalty_card_changelist")}"' in html
    for url in ("admin:crm_contact_changelist", "admin:crm_callbackevent_changelist", "console:system"):
        assert f'href="{reverse(url)}"' not in html, url


def test_simulate_adds_is_offered_only_with_the_simulator(admin_client, settings):
    channel = Channel.objects.create(name="Shanghai", state="store-sh-001", config_id="cfg1")
    change = reverse("admin:crm_channel_change", args=[channel.pk])
    action = f"/admin/crm/channel/{channel.pk}/simulate_adds/"
    assert action in admin_client.get(change).content.decode()
    settings.WECOM_SIM_ENABLED = False  # a production deployment: nothing simulated to drive
    assert action not in admin_client.get(change).content.decode()
    assert admin_client.post(action, {"customers": 5, "_form_submitted": "on"}).status_code == 403
    with pytest.raises(ApplicationError) as refused:
        channel_simulate_adds(channel.pk, 5)
    assert refused.value.code == "no_simulator"
