"""The channel page in Chromium, in English and in Chinese: the contact-me QR WeCom gave the channel, drawn and
downloadable as a real PNG, the adds-per-day chart drawn by Chart.js, and the attributed adds."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from crm.models import Contact, FollowRelation, Staff
from crm.services.channels import channel_create
from tests.browser.conftest import SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]


def test_channel_page_shows_the_qr_chart_and_adds(staffed, console_page, lang, live_stack, screenshot):
    channel = channel_create(name="Store Nanjing Rd", state=f"store-nj-{lang}", staff_userids=["alice"])
    assert channel.qr_code  # from WeCom's add_contact_way
    alice = Staff.objects.get(userid="alice")
    now = timezone.now()
    for i in range(3):
        contact = Contact.objects.create(external_userid=f"wm{lang}{i}", name=f"Shopper {i}", channel=channel,
                                         first_added_at=now - timedelta(days=i))
        FollowRelation.objects.create(staff=alice, contact=contact, state=channel.state,
                                      added_at=now - timedelta(days=i))

    page = console_page(lang=lang)
    page.goto(f"{live_stack}/admin/console/channels/{channel.pk}/")
    assert page.locator('[data-testid="channel-state"]').inner_text() == channel.state
    assert page.locator('[data-testid="channel-qr"] svg').count() == 1
    assert page.locator('[data-testid="channel-add-row"]').count() == 3
    assert page.locator('[data-testid="channel-add-row"]').first.inner_text().startswith("Shopper 0")
    # Chart.js drew the 30 days, with the three adds in them.
    canvas = "document.querySelector('[data-testid=channel-chart] canvas')"
    page.wait_for_function(f"() => window.Chart && Chart.getChart({canvas})")
    drawn = page.evaluate(f"""() => {{
        const chart = Chart.getChart({canvas});
        return [chart.data.labels.length, chart.data.datasets[0].data.reduce((a, b) => a + b, 0)];
    }}""")
    assert drawn == [30, 3]
    screenshot(page, f"channel-page-{lang}")

    with page.expect_download() as download_info:
        page.click(f'a[href$="/channels/{channel.pk}/qr.png"]')
    download = download_info.value
    assert download.suggested_filename == f"channel-store-nj-{lang}-qr.png"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    saved = SCREENSHOTS / download.suggested_filename
    download.save_as(saved)
    assert Path(saved).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
