"""An apply that loses a race with another apply for the same person (PostgreSQL aborts one of two transactions
writing the same unique keys in another order) runs again at once instead of waiting for its retry backoff;
any other database error is a failure as before."""

from __future__ import annotations

import pytest
from django.db import OperationalError
from django.utils import timezone

from crm.models import CallbackEvent
from crm.services import callback_routing
from crm.services import callbacks as svc

pytestmark = pytest.mark.django_db


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


def _routed() -> CallbackEvent:
    now = timezone.now()
    payload = {"Event": "change_external_contact", "ChangeType": "edit_external_contact", "UserID": "alice",
               "ExternalUserID": "wm-race"}  # fmt: skip
    return CallbackEvent.objects.create(dedupe_key="r" * 64, payload=payload, event=payload["Event"],
                                        change_type=payload["ChangeType"], status="routed", routed_at=now,
                                        received_at=now)  # fmt: skip


def _failing(monkeypatch, sqlstate: str, times: int) -> list:
    calls = []

    def apply_event(payload):
        calls.append(payload)
        if len(calls) <= times:
            raise OperationalError("deadlock detected") from _PgError(sqlstate)
        return "applied edit"

    monkeypatch.setattr(callback_routing, "apply_event", apply_event)
    monkeypatch.setattr(svc.time, "sleep", lambda _s: None)
    return calls


@pytest.mark.parametrize("sqlstate", ["40P01", "40001"])
def test_a_lost_race_is_applied_again_at_once(monkeypatch, sqlstate):
    calls = _failing(monkeypatch, sqlstate, times=2)
    event = svc.callback_apply(event_id=_routed().pk)
    event.refresh_from_db()
    assert (event.status, event.attempts, event.error, event.result) == ("applied", 1, "", "applied edit")
    assert len(calls) == 3


def test_races_without_end_or_other_errors_are_failures(monkeypatch):
    calls = _failing(monkeypatch, "40P01", times=99)
    event = svc.callback_apply(event_id=_routed().pk)
    event.refresh_from_db()
    assert event.status == "failed" and "deadlock" in event.error and len(calls) == svc.RACE_RETRIES + 1

    CallbackEvent.objects.all().delete()
    calls = _failing(monkeypatch, "57014", times=1)  # query_canceled: not a race
    event = svc.callback_apply(event_id=_routed().pk)
    event.refresh_from_db()
    assert event.status == "failed" and len(calls) == 1
