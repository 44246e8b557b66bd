"""A campaign on its console page in Chromium, in English and in Chinese: beat launches it, the worker sends it to
the simulator, the simulated staff confirm, beat's poll reads the results, and the progress bar climbs to 100 %
without a reload; cancelling it once finished is refused with the reason."""

from __future__ import annotations

import threading

import pytest
from django.utils import timezone

from crm.models import Campaign
from crm.services import campaigns as svc
from tests.browser.conftest import mark_document, still_same_document
from tests.browser.conftest import save_screenshot as screenshot
from tests.crm.campaigns.conftest import befriend, make_staff, sim  # noqa: F401  (sim: the simulated world)

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]
LANGUAGES = pytest.mark.parametrize("lang", ["en", "zh-hans"])


def _beat_until(stop: threading.Event) -> None:
    """Beat's two campaign entries, at test speed: launch what is due, poll created tasks' results."""
    from crm.tasks.campaigns import launch_due_campaigns, poll_mass_message_results

    while not stop.wait(0.5):
        launch_due_campaigns.delay()
        poll_mass_message_results.delay()


@LANGUAGES
def test_campaign_progress_reaches_100_percent(sim, celery_worker, console_page, lang, live_stack):  # noqa: F811
    page = console_page(lang=lang)
    sim.call("PATCH", "corp", confirm_delay_seconds=3)  # the simulated staff confirm 3 s after the task arrives
    sim.member("erin")
    erin = make_staff("erin", name="Erin")
    for i in range(3):
        befriend(sim, erin, f"Shopper {lang} {i}")
    campaign = svc.campaign_create(name=f"Tonight {lang}", text="Tonight only: 20 % off", scheduled_at=timezone.now())

    page.goto(f"{live_stack}/admin/console/campaigns/{campaign.id}/")
    assert page.locator("html").get_attribute("lang") == lang  # the console answers in the browser's language
    assert page.locator('[data-testid="campaign-text"]').inner_text() == "Tonight only: 20 % off"
    assert page.locator("#campaign-progress").get_attribute("data-percent") == "0"
    mark_document(page)

    stop = threading.Event()
    beat = threading.Thread(target=_beat_until, args=(stop,), daemon=True)
    beat.start()
    try:
        page.wait_for_selector('#campaign-progress[data-status="running"]', timeout=20_000)
        page.wait_for_selector('[data-testid="progress-bar"][aria-valuenow="100"]', timeout=30_000)
        page.wait_for_selector('#campaign-progress[data-final="true"]', timeout=20_000)
    finally:
        stop.set()
        beat.join()
    figures = page.locator('[data-testid="figures"] li').evaluate_all(
        "items => Object.fromEntries(items.map(li => [li.dataset.figure, li.querySelector('[data-testid^=figure-]')"
        ".innerText.trim()]))")
    assert figures == {"planned": "3", "sent": "3", "confirmed": "3", "delivered": "3", "failed": "0",
                       "cancelled": "0"}
    width = page.locator('[data-segment="delivered"]').evaluate("el => el.getBoundingClientRect().width")
    track = page.locator('[data-testid="progress-bar"]').evaluate("el => el.getBoundingClientRect().width")
    assert abs(width - track) < 1  # the delivered segment fills the bar
    page.wait_for_selector('[data-testid="campaign-status"][data-status="done"]')  # the header follows too
    assert still_same_document(page), "the campaign page reloaded"
    screenshot(page, f"campaign-progress-100-{lang}")

    # Cancelling a finished campaign: refused, and the page says why.
    page.once("dialog", lambda dialog: dialog.accept())  # "Cancel this campaign?"
    with page.expect_navigation():
        page.click('[data-testid="cancel-form"] button[type="submit"]')
    refusal = page.locator(".errornote")
    assert refusal.count() == 1
    if lang == "en":
        assert refusal.inner_text().strip() == "A done campaign cannot be cancelled."
    screenshot(page, f"campaign-cancel-refused-{lang}")
    assert page.locator('[data-testid="campaign-status"]').get_attribute("data-status") == "done"
    assert Campaign.objects.get(id=campaign.id).status == Campaign.Status.DONE
