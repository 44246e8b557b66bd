"""The console frame: unfold everywhere, the sidebar by job gated by model permissions, the System page."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse
from unfold.admin import BaseInlineMixin
from unfold.admin import ModelAdmin as UnfoldModelAdmin

from crm.models import CallbackEvent
from crm.selectors import system as system_selectors

pytestmark = pytest.mark.django_db

SECTIONS = ["Dashboard", "Contacts", "Channels", "Groups", "Campaigns", "Red packets", "Loyalty", "Data sources",
            "Staff", "System"]


def test_every_model_admin_and_inline_is_unfolds():
    assert admin.site.__class__.__module__ == "unfold.sites"
    for model, model_admin in admin.site._registry.items():
        assert isinstance(model_admin, UnfoldModelAdmin), model
        for inline in model_admin.inlines:
            assert issubclass(inline, BaseInlineMixin), (model, inline)


def _sidebar(html: str) -> str:
    start = html.index('id="nav-sidebar-apps"')
    return html[start:html.index("</nav>", start) if "</nav>" in html[start:] else None]


def _section_titles(client) -> list[str]:
    from crm.admin.navigation import sidebar_navigation

    request = client.get(reverse("admin:index")).wsgi_request
    return [str(group["title"]) for group in sidebar_navigation(request)]


def test_superuser_sees_every_section_in_order(admin_client):
    response = admin_client.get(reverse("admin:index"))
    assert response.status_code == 200
    assert _section_titles(admin_client) == SECTIONS
    html = response.content.decode()
    for title in ("Contacts", "Red-packet pools", "Points ledger", "Health and queues", "Beat schedules",
                  "Simulator"):
        assert title in _sidebar(html), title
    assert reverse("admin:crm_contact_changelist") in html


def test_menu_follows_model_permissions(client, staff_with):
    user = staff_with("crm.view_contact", "crm.view_campaign")
    client.force_login(user)
    assert _section_titles(client) == ["Dashboard", "Contacts", "Campaigns"]
    sidebar = _sidebar(client.get(reverse("admin:index")).content.decode())
    assert reverse("admin:crm_contact_changelist") in sidebar
    assert reverse("admin:crm_campaign_changelist") in sidebar
    for hidden in ("admin:crm_tag_changelist", "admin:crm_redpacketpool_changelist", "admin:crm_staff_changelist",
                   "admin:loyalty_card_changelist", "console:system"):
        assert reverse(hidden) not in sidebar, hidden
    assert "Simulator" not in sidebar
    # What the menu hides, the admin refuses too.
    assert client.get(reverse("admin:crm_redpacketpool_changelist")).status_code == 403
    assert client.get(reverse("console:system")).status_code == 403


def test_system_section_needs_its_permissions(client, staff_with):
    client.force_login(staff_with("crm.view_callbackevent", "django_celery_beat.view_periodictask"))
    assert _section_titles(client) == ["Dashboard", "System"]
    sidebar = _sidebar(client.get(reverse("admin:index")).content.decode())
    assert reverse("console:system") in sidebar
    assert reverse("admin:django_celery_beat_periodictask_changelist") in sidebar
    assert "Simulator" not in sidebar  # the simulator's models need their own permissions


def test_system_page_shows_health_queues_schedules_and_backlog(admin_client, redis_client, monkeypatch):
    from django.utils import timezone
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    queue = "crm:test-system-page-queue"  # a key of the test's own (crm:* is cleared between tests)
    monkeypatch.setattr(system_selectors, "QUEUES", (queue,))
    redis_client.rpush(queue, "a", "b", "c")
    every = IntervalSchedule.objects.create(every=15, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(name="campaigns-launch-due", task="crm.tasks.campaigns.launch_due_campaigns",
                                interval=every)
    old = timezone.now() - timezone.timedelta(minutes=10)
    CallbackEvent.objects.create(dedupe_key="a" * 64, status=CallbackEvent.Status.RECEIVED, received_at=old)
    CallbackEvent.objects.create(dedupe_key="b" * 64, status=CallbackEvent.Status.FAILED)
    CallbackEvent.objects.create(dedupe_key="c" * 64, status=CallbackEvent.Status.APPLIED)

    response = admin_client.get(reverse("console:system"))
    assert response.status_code == 200
    assert response.context["queue_table"]["rows"] == [[queue, 3]]
    backlog = response.context["backlog"]
    assert (backlog["received"], backlog["failed"], backlog["processed_24h"]) == (1, 1, 1)
    assert 590 <= backlog["oldest_age_seconds"] <= 700
    assert [row[0] for row in response.context["schedule_table"]["rows"]] == ["campaigns-launch-due"]
    checks = {str(row[0]): row[1] for row in response.context["health_table"]["rows"]}
    assert checks["Database"] == "OK" and checks["Redis"] == "OK"
    html = response.content.decode()
    assert 'data-testid="system-page"' in html and "campaigns-launch-due" in html
    assert reverse("admin:app_list", kwargs={"app_label": "wecom_sim"}) in html


def test_system_page_says_when_the_broker_is_down(admin_client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = admin_client.get(reverse("console:system"))
    assert response.status_code == 200
    assert response.context["health_ok"] is False
    assert "The broker cannot be reached" in response.content.decode()
