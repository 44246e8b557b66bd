"""System page: health (database, Redis, worker heartbeats), Celery queue depths, beat schedules, callback backlog.
The beat schedules and callback events themselves are edited and read in their admin lists (linked here)."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from crm.selectors import system as selectors


def _url(name: str, **kwargs) -> str | None:
    try:
        return reverse(name, kwargs=kwargs or None)
    except NoReverseMatch:
        return None


def _ok(check: dict) -> str:
    return _("OK") if check.get("ok") else _("Failing: %(error)s") % {"error": check.get("error", "")}


@permission_required("crm.view_callbackevent", raise_exception=True)
def system_page(request: HttpRequest) -> HttpResponse:
    health = selectors.system_health()
    checks = health["checks"]
    workers = checks["worker"].get("seconds_since_beat") or {}
    queues = selectors.queue_depths()
    backlog = selectors.callback_backlog()
    schedules = selectors.beat_schedules()
    context = {
        **admin.site.each_context(request),
        "title": _("Health and queues"),
        "health_ok": health["ok"],
        "health_table": {
            "headers": [_("Check"), _("State")],
            "rows": [
                [_("Database"), _ok(checks["database"])],
                [_("Redis"), _ok(checks["redis"])],
                [_("Celery workers"), _ok(checks["worker"])],
                *[[host, _("last heartbeat %(s)s s ago") % {"s": age}] for host, age in sorted(workers.items())],
            ],
        },
        "queues_ok": queues["ok"],
        "queues_error": queues.get("error", ""),
        "queue_table": {
            "headers": [_("Queue"), _("Messages waiting")],
            "rows": [[name, "—" if depth is None else depth] for name, depth in queues["queues"].items()],
        },
        "backlog": backlog,
        "backlog_table": {
            "headers": [_("Callbacks"), _("Count")],
            "rows": [
                [_("Waiting to be processed"), backlog["received"]],
                [_("Failed"), backlog["failed"]],
                [_("Applied in the last 24 hours"), backlog["processed_24h"]],
                [_("Oldest waiting"), _("%(s)s s") % {"s": backlog["oldest_age_seconds"]}
                 if backlog["oldest_age_seconds"] is not None else "—"],
            ],
        },
        "schedule_table": {
            "headers": [_("Name"), _("Task"), _("Schedule"), _("Enabled"), _("Last run")],
            "rows": [
                [s.name, s.task, str(s.scheduler or "—"),
                 _("yes") if s.enabled else _("no"),
                 timezone.localtime(s.last_run_at).strftime("%Y-%m-%d %H:%M:%S") if s.last_run_at else "—"]
                for s in schedules
            ],
        },
        "callbacks_url": _url("admin:crm_callbackevent_changelist"),
        "failed_callbacks_url": (_url("admin:crm_callbackevent_changelist") or "") + "?status__exact=failed"
        if _url("admin:crm_callbackevent_changelist") else None,
        "schedules_url": _url("admin:django_celery_beat_periodictask_changelist"),
        "simulator_url": _url("admin:app_list", app_label="wecom_sim") if settings.WECOM_SIM_ENABLED else None,
    }
    return render(request, "console/system.html", context)
