"""Console journeys in Chromium, in English and in Chinese (issue 10 point 9): create a channel through the admin's
form and download its QR; simulate 20 adds on it and see them on the dashboard's chart; each role's menu."""

from __future__ import annotations

import pytest
from django.utils import translation
from django.utils.translation import gettext

from crm.models import Channel, FollowRelation, Staff
from crm.services.channels import channel_create
from crm.wecom.client import get_client
from loyalty.services.store_staff import demo_users_ensure
from tests.browser.conftest import SCREENSHOTS
from tests.conftest import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]

PNG = b"\x89PNG\r\n\x1a\n"


def test_create_a_channel_and_download_its_qr(staffed, console_page, lang, live_stack, screenshot):
    state = f"window-{lang}"
    alice = Staff.objects.get(userid="alice")
    page = console_page(lang=lang)
    page.goto(f"{live_stack}/admin/crm/channel/add/")
    page.fill("#id_name", "Shop window")
    page.fill("#id_state", state)
    page.select_option("#id_staff_from", str(alice.pk))  # the filter_horizontal widget: choose, then move across
    page.click("#id_staff_add")
    page.fill("#id_welcome_text", "Welcome!")
    screenshot(page, f"channel-add-{lang}")
    page.click('button[name="_save"]')

    # Saved through channel_create: WeCom made the contact way, and the console opens the channel's page.
    page.wait_for_selector('[data-testid="channel-qr"] svg')
    channel = Channel.objects.get(state=state)
    assert page.url.endswith(f"/admin/console/channels/{channel.pk}/")
    assert page.locator('[data-testid="channel-state"]').inner_text() == state
    way = get_client().get_contact_way(channel.config_id)["contact_way"]
    assert (way["state"], way["user"]) == (state, ["alice"])

    with page.expect_download() as download_info:
        page.click(f'a[href$="/channels/{channel.pk}/qr.png"]')
    download = download_info.value
    assert download.suggested_filename == f"channel-{state}-qr.png"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    saved = SCREENSHOTS / download.suggested_filename
    download.save_as(saved)
    assert saved.read_bytes()[:8] == PNG


ADDS_CANVAS = "document.querySelectorAll('#crm-dashboard canvas.chart')[0]"  # contacts added per day, by channel


def _adds_today(page) -> dict:
    """Today's column of the adds-per-day chart as Chart.js drew it: {channel name: adds}, and the KPI tile."""
    page.wait_for_function(f"() => window.Chart && Chart.getChart({ADDS_CANVAS})")
    drawn = page.evaluate(f"""() => {{
        const chart = Chart.getChart({ADDS_CANVAS});
        const today = chart.data.labels.length - 1;
        return Object.fromEntries(chart.data.datasets.map(d => [d.label, d.data[today]]));
    }}""")
    return {"chart": drawn, "tile": int(page.locator('[data-kpi="adds-today"]').inner_text())}


def test_simulate_20_adds_and_see_them_on_the_dashboard(staffed, celery_worker, console_page, lang, live_stack,
                                                        screenshot):
    channel = channel_create(name=f"Mall {lang}", state=f"mall-{lang}", staff_userids=["alice", "bob"])
    page = console_page(lang=lang)
    before = _adds_today(page)
    assert before["chart"].get(channel.name, 0) == 0

    page.goto(f"{live_stack}/admin/crm/channel/{channel.pk}/change/")
    page.click(f'a[href$="/crm/channel/{channel.pk}/simulate_adds/"]')  # opens unfold's dialog
    page.fill("#modal-content input[name=customers]", "20")
    screenshot(page, f"simulate-adds-dialog-{lang}")
    with page.expect_navigation(url=f"**/admin/crm/channel/{channel.pk}/change/", timeout=30_000):  # HX-Redirect
        page.click('#modal-content button[type="submit"]')
    with translation.override(lang):
        said = gettext("%(n)d shoppers scanned the QR; their contacts arrive as WeCom calls back.") % {"n": 20}
    assert said in page.inner_text("body")

    # WeCom (the simulator) calls back for every add; the worker makes the contacts.
    wait_for(lambda: FollowRelation.objects.filter(state=channel.state).count() == 20, timeout=40,
             message="20 contacts added through the channel")
    page.goto(f"{live_stack}/admin/")
    after = _adds_today(page)
    assert after["chart"][channel.name] == 20
    assert after["tile"] == before["tile"] + 20
    screenshot(page, f"dashboard-after-20-adds-{lang}")


SECTIONS = ["Dashboard", "Contacts", "Channels", "Groups", "Campaigns", "Red packets", "Loyalty", "Data sources",
            "Staff", "System"]
# demo user -> the sidebar sections they see (in this order); the others are hidden.
MENUS = {
    "admin": SECTIONS,
    "marketing": ["Dashboard", "Contacts", "Channels", "Groups", "Campaigns", "Red packets", "Loyalty", "Staff"],
    "manager": ["Dashboard", "Loyalty"],
}


def test_each_roles_menu(console_page, lang, screenshot):
    users = demo_users_ensure()  # one demo user per role, password = username
    with translation.override(lang):
        def shown(names: list[str]) -> list[str]:
            return [gettext(name) for name in names]

        for username, sections in MENUS.items():
            page = console_page(users[username], lang=lang, password=username)
            sidebar = page.locator("#nav-sidebar-apps")
            assert [t.strip() for t in sidebar.locator("h2").all_inner_texts()] == shown(sections), username
            items = [t.strip() for t in sidebar.locator("a").all_inner_texts()]
            if username == "admin":
                assert gettext("Handover wizard") in " ".join(items)
            if username == "marketing":  # the staff list to pick a channel's staff; no handover, no raw data
                assert gettext("Handover wizard") not in " ".join(items)
                assert gettext("Handovers") not in items and gettext("Data sources") not in items
            screenshot(page, f"menu-{username}-{lang}")

        # A cashier works at the till only: the console's login refuses them.
        page = console_page(users["cashier"], lang=lang, password="cashier", signed_in=False)
        assert "/admin/login/" in page.url
        assert page.locator("#nav-sidebar-apps").count() == 0
        screenshot(page, f"menu-cashier-{lang}")
