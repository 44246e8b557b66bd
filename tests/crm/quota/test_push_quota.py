"""The receive quota as the CRM counts it: periods in China time, and what counts against them."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from crm.models import Campaign, CampaignRecipient, CampaignRun, Contact
from crm.services import push_quota


def _utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("kind", "moment", "start", "reachable", "limit"),
    [
        # 2026-02-28 20:00 UTC is already 1 March in Shanghai: March's window, 31 messages.
        ("month_days", _utc(2026, 2, 28, 20), date(2026, 3, 1), _utc(2026, 3, 31, 16), 31),
        ("month_days", _utc(2026, 2, 10, 3), date(2026, 2, 1), _utc(2026, 2, 28, 16), 28),
        # Wednesday 2 Dec 2026 (Shanghai): the week began on Monday 30 Nov, the next begins Monday 7 Dec.
        ("week7", _utc(2026, 12, 2, 3), date(2026, 11, 30), _utc(2026, 12, 6, 16), 7),
        ("day1", _utc(2026, 12, 2, 15, 59), date(2026, 12, 2), _utc(2026, 12, 2, 16), 1),
        ("day1", _utc(2026, 12, 2, 16, 0), date(2026, 12, 3), _utc(2026, 12, 3, 16), 1),
    ],
)
def test_windows_follow_china_time(kind, moment, start, reachable, limit):
    window = push_quota.window(moment, kind)
    assert (window.start_day, window.reachable_at, window.limit) == (start, reachable, limit)


def test_an_unknown_setting_is_refused(settings):
    settings.WECOM_MASS_QUOTA = "weekly"
    with pytest.raises(Exception) as exc:
        push_quota.window()
    assert getattr(exc.value, "field", None) == "WECOM_MASS_QUOTA"


@pytest.mark.django_db
def test_pending_and_delivered_count_in_the_period_and_the_rest_do_not(settings):
    settings.WECOM_MASS_QUOTA = "day1"
    moment = _utc(2026, 12, 2, 3)
    today, yesterday = push_quota.local_day(moment), date(2026, 12, 1)
    contact = Contact.objects.create(external_userid="wmquota1")
    other = Contact.objects.create(external_userid="wmquota2")
    campaign = Campaign.objects.create(name="q", text="t")

    def recipient(who, status, day, n):
        run = CampaignRun.objects.create(campaign=campaign, occurrence=_utc(2026, 11, 1, n))
        CampaignRecipient.objects.create(campaign=campaign, run=run, contact=who, external_userid=who.external_userid,
                                         status=status, quota_day=day)

    recipient(contact, CampaignRecipient.Status.DELIVERED, yesterday, 1)  # last period
    recipient(contact, CampaignRecipient.Status.EXPIRED, today, 2)  # never reached them
    recipient(contact, CampaignRecipient.Status.CANCELLED, today, 3)
    assert push_quota.remaining(contact.id, moment) == 1
    recipient(contact, CampaignRecipient.Status.PENDING, today, 4)  # may still be delivered
    assert push_quota.remaining(contact.id, moment) == 0
    counts = dict(
        Contact.objects.filter(id__in=[contact.id, other.id])
        .annotate(n=push_quota.received(moment))
        .values_list("external_userid", "n")
    )
    assert counts == {"wmquota1": 1, "wmquota2": 0}
