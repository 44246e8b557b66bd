"""Celery tasks for group lucky draws: thin, take ids, call crm.services.draws; safe to re-run."""

from __future__ import annotations

from celery import shared_task

from crm.services.draws import announcement_send, draw_fulfil, draws_close_due
from crm.wecom.errors import WeComError


@shared_task(acks_late=True)
def fulfil_draw(draw_id: int) -> dict:
    """Fulfil every winner not fulfilled yet; each winner's unique key makes a re-run grant nothing twice."""
    return draw_fulfil(draw_id)


@shared_task(bind=True, acks_late=True, max_retries=8)
def send_draw_announcement(self, announcement_id: int) -> str:
    try:
        return announcement_send(announcement_id)
    except WeComError as exc:
        if exc.permanent or exc.maybe_applied:
            return "failed" if exc.permanent else "unknown"
        raise self.retry(exc=exc, countdown=min(300, 2 ** min(self.request.retries, 8)))


@shared_task(acks_late=True)
def close_due_draws() -> dict:
    """Beat (every 30 s): close and reveal the draws whose entries are due to close; winners, fulfilment and the
    winners' announcement follow from the reveal. Queues lost fulfilments and announcements again."""
    return draws_close_due()
