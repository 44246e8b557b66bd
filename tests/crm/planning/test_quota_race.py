"""Two campaigns planned at the same moment never both take a customer's last quota slot (PostgreSQL)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from crm.models import CampaignRecipient
from crm.services import campaign_runs
from crm.services import campaigns as svc
from tests.crm.campaigns.conftest import make_contact, make_staff

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif("connection.vendor != 'postgresql'", reason="concurrent planners need real row visibility"),
]


def test_concurrent_planners_hold_one_quota_slot_per_customer(settings, monkeypatch):
    from crm.tasks import planning

    monkeypatch.setattr(planning.plan_run, "delay", lambda *a, **k: None)  # planned here, by two threads
    settings.WECOM_MASS_QUOTA = "day1"
    staff = make_staff()
    contacts = [make_contact(staff) for _ in range(30)]
    runs = [
        campaign_runs.run_start(svc.campaign_create(name=f"flash {i}", text="Tonight only", segment={}).id)
        for i in range(2)
    ]
    barrier = threading.Barrier(2)

    def plan(run_id: int) -> None:
        try:
            barrier.wait(10)
            campaign_runs.run_plan(run_id, enqueue=False)
        finally:
            connection.close()

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(plan, [r.id for r in runs]))
    pending = CampaignRecipient.objects.filter(run__in=runs, status="pending")
    held = CampaignRecipient.objects.filter(run__in=runs, status="over_quota")
    # Each customer's one message of the day goes to one of the two campaigns; the other holds it back.
    assert sorted(pending.values_list("contact_id", flat=True)) == sorted(c.id for c in contacts)
    assert held.count() == 30
