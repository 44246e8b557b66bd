"""A handover run through the wizard in Chromium to done, in English and in Chinese: choose the leaver, see their
customers, choose two takeovers, confirm, and watch the live page follow every transfer (the worker submits, the
simulator decides, WeCom's 24 h pass on its clock) without reloading until all are final."""

from __future__ import annotations

import pytest

from crm.models import FollowRelation
from crm.models.staff import Handover
from crm.services.channels import channel_create
from crm.services.staff import staff_sync
from tests.browser.conftest import mark_document, still_same_document
from tests.browser.conftest import save_screenshot as screenshot
from tests.conftest import wait_for
from tests.crm.contacts.conftest import sim, staffed  # noqa: F401  (fixtures: the simulated world)

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]
LANGUAGES = pytest.mark.parametrize("lang", ["en", "zh-hans"])


@LANGUAGES
def test_handover_through_the_wizard_to_done(staffed, celery_worker, console_page, lang, live_stack):  # noqa: F811
    world, page = staffed, console_page(lang=lang)
    channel_create(name="Alice QR", state="alice-qr", staff_userids=["alice"])
    eids = [world.shopper(f"browser-{lang}-{i}") for i in range(3)]
    for eid in eids:
        world.scan(eid, "alice-qr")
    wait_for(lambda: FollowRelation.objects.filter(staff__userid="alice").count() == 3, timeout=30,
             message="alice's customers in the CRM")
    world.post("members/alice/resign")
    staff_sync()

    # 1. The leaver: alice is listed among resigned staff holding customers; choose her in the form.
    page.goto(f"{live_stack}/admin/console/handover/")
    assert page.locator("html").get_attribute("lang") == lang  # the console answers in the browser's language
    assert page.locator("#handover-wizard").get_attribute("data-step") == "leaver"
    assert page.locator('[data-testid="leavers"] tbody tr').count() == 1
    page.select_option('select[name="leaver"]', "alice")
    page.click('[data-testid="leaver-form"] button[type="submit"]')

    # 2. Their customers and groups.
    page.wait_for_selector('#handover-wizard[data-step="customers"]')
    assert page.locator('[data-testid="customers-count"]').inner_text() == "3"
    assert sorted(page.locator('[data-testid="customers"] tbody tr').evaluate_all(
        "rows => rows.map(r => r.dataset.eid)")) == sorted(eids)
    assert page.locator('[data-testid="kind"]').get_attribute("data-kind") == "resigned"
    page.click('a[href*="step=takeovers"]')

    # 3. Takeovers: two, round robin.
    page.wait_for_selector('#handover-wizard[data-step="takeovers"]')
    page.check('input[name="takeovers"][value="bob"]')
    page.check('input[name="takeovers"][value="carol"]')
    page.click('[data-testid="takeover-form"] button[type="submit"]')

    # 4. Confirm: the split as handover_plan will make it.
    page.wait_for_selector('#handover-wizard[data-step="confirm"]')
    rows = page.locator('[data-testid="split"] tbody tr')
    assert rows.evaluate_all("rows => rows.map(r => [r.dataset.takeover, r.cells[1].innerText.trim()])") == [
        ["bob", "2"], ["carol", "1"]]
    screenshot(page, f"handover-confirm-{lang}")
    page.click('[data-testid="confirm-form"] button[type="submit"]')

    # 5. The live page: the worker submits, the block follows by itself (no reload).
    page.wait_for_url("**/admin/console/handover/*/")
    handover = Handover.objects.get()
    mark_document(page)
    page.wait_for_selector('#handover-progress[data-status="waiting"]', timeout=30_000)
    assert page.locator('[data-testid="count-waiting"]').inner_text() == "3"
    assert page.locator('[data-testid="transfers"] tbody tr[data-status="waiting"]').count() == 3

    world.advance(24 * 3600 + 60)  # WeCom's 24 h in which a customer may refuse
    page.click('[data-testid="check-form"] button[type="submit"]')  # htmx: the worker reads the results
    page.wait_for_selector('#handover-progress[data-final="true"]', timeout=30_000)
    assert page.locator("#handover-progress").get_attribute("data-percent") == "100"
    assert page.locator('[data-testid="count-done"]').inner_text() == "3"
    assert page.locator('[data-testid="transfers"] tbody tr[data-status="done"]').count() == 3
    assert still_same_document(page), "the live page reloaded"
    assert Handover.objects.get(pk=handover.pk).status == Handover.Status.FINISHED
