"""The console's failed-callbacks screen in Chromium, in English and in Chinese: an event whose effect failed
until it ran out of attempts is listed with its error, opened with its payload, replayed from its page, and the
real worker applies it (re-reading the simulated WeCom)."""

from __future__ import annotations

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from crm.models import CallbackEvent, FollowRelation
from crm.services import callbacks as svc
from crm.services.channels import channel_create
from tests.conftest import wait_for
from tests.crm.wecom.callback_helpers import event_xml

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

TEXT = {
    "en": {"menu": "Failed callbacks", "failed": "Failed", "step": "Applying the effect",
           "queued": "Replay queued: 1 failed event(s).", "applied": "Applied"},
    "zh-hans": {"menu": "失败的回调", "failed": "失败", "step": "执行处理",
                "queued": "已排队重放 1 个失败事件。", "applied": "已生效"},
}  # fmt: skip
ERROR = "WeComError: errcode=-1 system busy (externalcontact/get)"


def _failed_edit(eid: str) -> CallbackEvent:
    """An edit event whose apply failed CALLBACK_MAX_ATTEMPTS times: no automatic retry left."""
    xml = event_xml(ChangeType="edit_external_contact", UserID="alice", ExternalUserID=eid, State=None,
                    WelcomeCode=None)  # fmt: skip
    payload = svc.parse_event_xml(xml)
    now = timezone.now()
    return CallbackEvent.objects.create(
        dedupe_key=svc.dedupe_key(payload), decrypted_xml=xml, payload=payload, event=payload["Event"],
        change_type=payload["ChangeType"], status="failed", attempts=svc.max_attempts(), error=ERROR,
        received_at=now, routed_at=now, last_attempt_at=now, next_attempt_at=None,
    )  # fmt: skip


def test_failed_callback_is_listed_shown_and_replayed(staffed, celery_worker, console_page, lang, live_url,
                                                      screenshot):  # fmt: skip
    text = TEXT[lang]
    sim = staffed
    channel_create(name=f"Store {lang}", state=f"store-{lang}", staff_userids=["alice"])
    eid = sim.shopper(f"Shopper {lang}")
    sim.scan(eid, f"store-{lang}")
    wait_for(lambda: FollowRelation.objects.filter(contact__external_userid=eid).exists()
             and set(CallbackEvent.objects.values_list("status", flat=True)) == {"applied"},
             timeout=30, message="the add applied")  # fmt: skip
    event = _failed_edit(eid)

    page = console_page(lang=lang)
    page.locator('a[href="/admin/crm/callbackevent/?status__exact=failed"]').first.click()
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(ERROR[:60])
    expect(rows.first).to_contain_text(text["failed"])
    screenshot(page, f"failed-callbacks-{lang}")

    rows.first.locator(f'a[href*="/admin/crm/callbackevent/{event.pk}/change/"]').first.click()
    expect(page.locator('[data-testid="callback-payload"]')).to_contain_text(eid)
    expect(page.locator('[data-testid="callback-payload"]')).to_contain_text("edit_external_contact")
    expect(page.locator("body")).to_contain_text(ERROR)
    expect(page.locator("body")).to_contain_text(text["step"])

    page.locator(f'a[href$="/admin/crm/callbackevent/{event.pk}/replay/"]').first.click()
    expect(page.locator("body")).to_contain_text(text["queued"])
    wait_for(lambda: CallbackEvent.objects.get(pk=event.pk).status == "applied", timeout=30,
             message="the replayed event applied by the worker")  # fmt: skip
    page.reload()
    expect(page.locator("body")).to_contain_text(text["applied"])
    expect(page.locator(f'a[href$="/admin/crm/callbackevent/{event.pk}/replay/"]')).to_have_count(0)  # applied now
    screenshot(page, f"failed-callback-replayed-{lang}")
    done = CallbackEvent.objects.get(pk=event.pk)
    assert (done.attempts, done.error) == (1, "") and done.result.startswith("contact ")

    page.goto(f"{live_url}/admin/crm/callbackevent/?status__exact=failed")
    expect(page.locator("#result_list tbody tr")).to_have_count(0)
