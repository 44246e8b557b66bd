"""Composing a campaign in Chromium, in English and in Chinese: a marketer picks a saved segment, writes a two-line
text with a link, sees the WeChat bubble and the audience count follow the form, schedules it every Friday at
20:00 (Asia/Shanghai) and sees the next three Fridays, saves (the campaign page opens with the same schedule), then
presses Send now: the run appears in the runs table, the worker plans and sends it to the simulator, the simulated
staff confirm, beat's poll reads the results, and the run's own page climbs to 100 % without a reload."""

from __future__ import annotations

import itertools
import re
import threading
from datetime import datetime, timedelta

import pytest

from crm.models import Campaign, CampaignRun, Segment
from tests.browser.conftest import mark_document, still_same_document
from tests.browser.conftest import save_screenshot as screenshot
from tests.crm.campaigns.conftest import befriend, make_staff, sim  # noqa: F401  (sim: the simulated world)

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def _beat_until(stop: threading.Event) -> None:
    """Beat's result poll at test speed (planning and sending are queued by Send now itself)."""
    from crm.tasks.campaigns import poll_mass_message_results

    while not stop.wait(0.5):
        poll_mass_message_results.delay()


def test_compose_schedule_weekly_then_send_now(sim, celery_worker, console_page, console_user, lang,  # noqa: F811
                                               live_stack):
    sim.call("PATCH", "corp", confirm_delay_seconds=1)  # the simulated staff confirm a second after the task
    sim.member("erin")
    erin = make_staff("erin", name="Erin")
    for i in range(3):
        befriend(sim, erin, f"Shopper {lang} {i}")
    segment = Segment.objects.create(name=f"Erin's customers {lang}", last_count=3,
                                     definition={"field": "staff", "op": "in", "value": ["erin"]})
    page = console_page(console_user("mia", superuser=False, groups=["marketing"]), lang=lang)

    page.goto(f"{live_stack}/admin/crm/campaign/add/")
    assert page.locator("html").get_attribute("lang") == lang
    page.fill("#id_name", f"Friday night {lang}")
    page.fill("#id_text", "Friday night sale\n20 % off everything")
    page.check('input[name="target"][value="segment"]')
    page.check('input[name="segment_source"][value="saved"]')
    page.select_option("#id_saved_segment", str(segment.id))
    page.check('input[name="attachment"][value="link"]')
    page.fill("#id_link_title", "Friday sale")
    page.fill("#id_link_url", "https://shop.example.com/friday")
    page.fill("#id_link_desc", "Tonight only")

    # The bubble and the audience follow the form (debounced fetch of the server-rendered preview).
    preview = page.locator("#campaign-preview")
    page.wait_for_selector('#campaign-preview [data-testid="audience-count"][data-count="3"]')
    page.wait_for_selector('#campaign-preview [data-testid="bubble-link"]:has-text("Friday sale")')
    bubble = preview.locator('[data-testid="bubble-text"]')
    assert bubble.inner_text().splitlines() == ["Friday night sale", "20 % off everything"]
    if lang == "en":
        assert preview.locator('[data-testid="audience-count"]').inner_text() == "3 customers"

    page.check('input[name="recurrence"][value="weekly"]')
    page.select_option("#id_recur_weekday", "4")  # Friday
    page.fill("#id_recur_time", "20:00")
    page.locator("#id_recur_time").dispatch_event("change")
    page.wait_for_function(
        "document.querySelectorAll('#campaign-preview [data-testid=occurrences] li').length === 3")
    stamps = preview.locator('[data-testid="occurrences"] li').evaluate_all("items => items.map(li => li.dataset.at)")
    fridays = [datetime.fromisoformat(s) for s in stamps]
    assert all((f.weekday(), f.hour, f.minute, f.utcoffset()) == (4, 20, 0, timedelta(hours=8)) for f in fridays)
    assert [b - a for a, b in itertools.pairwise(fridays)] == [timedelta(days=7)] * 2
    screenshot(page, f"campaign-compose-{lang}")

    with page.expect_navigation():
        page.click('button[name="_save"]')
    campaign = Campaign.objects.get(name=f"Friday night {lang}")
    assert (campaign.recurrence, campaign.recur_weekday, campaign.saved_segment_id) == ("weekly", 4, segment.id)
    assert campaign.status == Campaign.Status.SCHEDULED and campaign.periodic_task_id is not None
    page.wait_for_url(re.compile(rf".*/admin/console/campaigns/{campaign.id}/$"))
    listed = page.locator('[data-testid="occurrences"] li').evaluate_all("items => items.map(li => li.dataset.at)")
    assert listed == stamps  # the campaign page lists the same next Fridays
    assert page.locator('[data-testid="runs-none"]').count() == 1
    screenshot(page, f"campaign-scheduled-{lang}")

    # Send now: an extra occurrence, planned and sent by the worker.
    mark_document(page)
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        page.click('[data-testid="launch-form"] button[type="submit"]')
    row = page.locator('[data-testid="run-row"]')
    assert row.count() == 1
    run = CampaignRun.objects.get(campaign=campaign)
    stop = threading.Event()
    beat = threading.Thread(target=_beat_until, args=(stop,), daemon=True)
    beat.start()
    try:
        page.click('[data-testid="run-link"]')
        page.wait_for_url(re.compile(rf".*/campaigns/{campaign.id}/runs/{run.id}/$"))
        mark_document(page)
        page.wait_for_selector('[data-testid="progress-bar"][aria-valuenow="100"]', timeout=45_000)
        page.wait_for_selector('#campaign-progress[data-status="done"]', timeout=20_000)
    finally:
        stop.set()
        beat.join()
    page.wait_for_selector('[data-testid="run-head"][data-status="done"]')  # the header follows, out of band
    assert page.locator('[data-testid="run-pause"], [data-testid="run-cancel"]').count() == 0
    assert still_same_document(page), "the run page reloaded"
    figures = page.locator('[data-testid="figures"] li').evaluate_all(
        "items => Object.fromEntries(items.map(li => [li.dataset.figure, li.querySelector('[data-testid^=figure-]')"
        ".innerText.trim()]))")
    assert figures["planned"] == "3" and figures["delivered"] == "3" and figures["failed"] == "0"
    screenshot(page, f"campaign-run-100-{lang}")
    # The simulator's own count: each of the 3 shoppers got the message once.
    assert sim.call("GET", "deliveries?text=Friday%20night%20sale") == {"delivered": 3, "shoppers": 3,
                                                                        "duplicates": 0}
