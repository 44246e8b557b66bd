"""The welcome message on add: sent with the event's one-shot WelcomeCode (valid 20 s), carrying the card link.

A WelcomeMessage row (unique idempotency key per follow relation and code) is written with the add, in the same
transaction; the send happens after commit. A redelivered callback finds the row and sends nothing."""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from crm.models.contacts import ContactEvent, FollowRelation, WelcomeMessage
from crm.services.customer_links import card_url
from crm.services.timeline import timeline_add
from crm.wecom.client import get_client
from crm.wecom.errors import WeComError

logger = logging.getLogger(__name__)

DEFAULT_WELCOME_TEXT = "Welcome! Your membership card is ready: tap below to open it."
ERR_CODE_EXPIRED = 41050
ERR_ALREADY_SENT = 41051


def welcome_key(follow: FollowRelation, welcome_code: str) -> str:
    return f"welcome:{follow.pk}:{welcome_code}"


def welcome_prepare(follow: FollowRelation, welcome_code: str, *, event_time: datetime | None = None) -> bool:
    """Record the welcome for this add (once) and send it after commit. Returns False if it was already recorded."""
    if not welcome_code:
        return False
    contact = follow.contact
    channel = contact.channel
    text = (channel.welcome_text if channel and channel.welcome_text else DEFAULT_WELCOME_TEXT)
    try:
        with transaction.atomic():
            welcome = WelcomeMessage.objects.create(
                follow=follow,
                idempotency_key=welcome_key(follow, welcome_code),
                welcome_code=welcome_code,
                text=text,
                link_url=card_url(contact.id),
                event_time=event_time,
            )
    except IntegrityError:
        return False  # a redelivered event: this code's welcome is already recorded

    from crm.tasks.contacts import send_welcome

    transaction.on_commit(lambda: send_welcome.delay(welcome.pk))
    return True


def _claim(welcome_id: int) -> WelcomeMessage | None:
    with transaction.atomic():
        welcome = WelcomeMessage.objects.select_for_update().filter(pk=welcome_id).first()
        # SENDING is re-claimable: the code is single-use in WeCom, so a repeat can only answer 41051.
        if welcome is None or welcome.status not in (WelcomeMessage.Status.PENDING, WelcomeMessage.Status.SENDING):
            return None
        welcome.status = WelcomeMessage.Status.SENDING
        welcome.save(update_fields=["status"])
        return welcome


def _finish(welcome: WelcomeMessage, status: str, errcode: int | None = None, errmsg: str = "") -> None:
    with transaction.atomic():
        welcome.status = status
        welcome.errcode = errcode
        welcome.errmsg = errmsg[:512]
        if status == WelcomeMessage.Status.SENT:
            welcome.sent_at = timezone.now()
        welcome.save(update_fields=["status", "errcode", "errmsg", "sent_at"])
        follow = welcome.follow
        timeline_add(
            follow.contact,
            ContactEvent.Kind.WELCOME,
            staff=follow.staff,
            data={"status": status, "errcode": errcode, "link": welcome.link_url},
        )


def welcome_send(welcome_id: int) -> str:
    """Send one recorded welcome. 41051 = already delivered (final), 41050 = code expired (recorded, not retried).
    Raises WeComError when a retry can help (41096 another app sending, system busy)."""
    welcome = _claim(welcome_id)
    if welcome is None:
        return "nothing to send"
    welcome = WelcomeMessage.objects.select_related("follow__contact", "follow__staff").get(pk=welcome.pk)
    attachments = [
        {
            "msgtype": "link",
            "link": {
                "title": "Your membership card",
                "desc": "Show the QR code at the till to collect points.",
                "url": welcome.link_url,
            },
        }
    ]
    try:
        get_client().send_welcome_msg(welcome.welcome_code, text={"content": welcome.text}, attachments=attachments)
    except WeComError as exc:
        if exc.errcode == ERR_ALREADY_SENT:
            _finish(welcome, WelcomeMessage.Status.ALREADY_SENT, exc.errcode, exc.errmsg)
            return "already sent"
        if exc.errcode == ERR_CODE_EXPIRED:
            _finish(welcome, WelcomeMessage.Status.EXPIRED, exc.errcode, exc.errmsg)
            return "expired"
        if exc.retryable:
            WelcomeMessage.objects.filter(pk=welcome.pk).update(
                status=WelcomeMessage.Status.PENDING, errcode=exc.errcode, errmsg=exc.errmsg[:512]
            )
            raise
        _finish(welcome, WelcomeMessage.Status.FAILED, exc.errcode, exc.errmsg)
        return f"failed {exc.errcode}"
    _finish(welcome, WelcomeMessage.Status.SENT)
    return "sent"
