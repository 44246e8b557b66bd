"""Pushes: hand one MassMessage to WeCom (add_msg_template) exactly once, and track its recipients.

Crash window: the row is marked "sending" in its own committed transaction before add_msg_template, and the
msgid stored after it returns. A worker that dies between the two (or a call that timed out) leaves "sending"
with no msgid: WeCom may or may not have created the task. The next attempt does not resend blindly: it looks
for the task in get_groupmsg_list_v2 (created since sending_at, same text, same sender, same recipients) and
adopts its msgid; only when nothing is found after a grace period (WeCom lists tasks with a delay, 41063) is the
row sent again. WeCom has no idempotency key of its own, so this lookup is what keeps the window closed.

Consent: recipients are built from customers consenting to marketing, but a customer may withdraw between the
launch and the send (a 20:00 campaign built at 19:59, a batch queued behind others). Right before each
add_msg_template call the batch is checked again: whoever withdrew is left out, their recipient row cancelled
and the reason written to their timeline.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.utils import timezone

from crm.models import Campaign, CampaignRecipient, ConsentRecord, Contact, ContactEvent, MassMessage
from crm.services.consent import contacts_consenting
from crm.services.timeline import timeline_add
from crm.wecom.client import get_client
from crm.wecom.errors import WeComError

logger = logging.getLogger(__name__)

RECOVERY_GRACE = timedelta(seconds=60)
WECOM_STATUS = {
    1: CampaignRecipient.Status.DELIVERED,
    2: CampaignRecipient.Status.NOT_FRIEND,
    3: CampaignRecipient.Status.LIMIT_REACHED,
}


class PushRetry(Exception):
    """The send or poll can succeed later (the task retries it)."""


def _body(message: MassMessage, external_userids: list[str]) -> dict:
    campaign = message.campaign
    body: dict = {
        "chat_type": "single",
        "external_userid": external_userids,
        "sender": message.sender.userid,
        "allow_select": False,
        "text": {"content": message.text or campaign.text},
    }
    if campaign.link_url:
        body["attachments"] = [
            {
                "msgtype": "link",
                "link": {"title": campaign.link_title, "url": campaign.link_url, "desc": campaign.link_desc},
            }
        ]
    return body


def _recipient_eids(message: MassMessage) -> list[str]:
    return list(
        CampaignRecipient.objects.filter(mass_message=message, status=CampaignRecipient.Status.PENDING)
        .order_by("id")
        .values_list("external_userid", flat=True)
    )


def _skip_without_consent(message: MassMessage) -> int:
    """Cancel this batch's pending recipients whose marketing consent is no longer in force; how many."""
    pending = CampaignRecipient.objects.filter(mass_message=message, status=CampaignRecipient.Status.PENDING)
    consenting = contacts_consenting(
        ConsentRecord.Purpose.MARKETING, Contact.objects.filter(id__in=pending.values("contact_id"))
    )
    with transaction.atomic():
        withdrawn = list(pending.exclude(contact_id__in=consenting.values("id")).select_related("contact"))
        if not withdrawn:
            return 0
        pending.filter(id__in=[r.id for r in withdrawn]).update(
            status=CampaignRecipient.Status.CANCELLED, updated_at=timezone.now()
        )
        # CANCELLED alone does not say why; the timeline row does (the recipient model has no reason field).
        for recipient in withdrawn:
            timeline_add(recipient.contact, ContactEvent.Kind.CONSENT, data={
                "skipped": "campaign_message", "reason": "marketing_consent_withdrawn",
                "campaign_id": message.campaign_id, "mass_message_id": message.id,
            })
    logger.info("recipients skipped: marketing consent withdrawn",
                extra={"mass_message_id": message.id, "skipped": len(withdrawn)})
    return len(withdrawn)


def _find_created_task(message: MassMessage, eids: list[str]) -> str | None:
    """The msgid of a task WeCom created for this row in a crashed attempt, if it can be found."""
    client = get_client()
    start = int((message.sending_at - timedelta(seconds=5)).timestamp())
    end = int(timezone.now().timestamp()) + 5
    text = message.text or message.campaign.text
    known = set(
        MassMessage.objects.filter(created_task_at__gte=message.sending_at - timedelta(minutes=5))
        .exclude(msgid=None)
        .values_list("msgid", flat=True)
    )
    wanted = set(eids)
    for item in client.iter_groupmsg_list_v2(chat_type="single", start_time=start, end_time=end, filter_type=0):
        msgid = item.get("msgid")
        if not msgid or msgid in known or (item.get("text") or {}).get("content") != text:
            continue
        senders = {t.get("userid") for t in client.iter_groupmsg_task(msgid)}
        if message.sender.userid not in senders:
            continue
        got = {r.get("external_userid") for r in client.iter_groupmsg_send_result(msgid, message.sender.userid)}
        if got and got <= wanted | set(message.fail_list or []):
            return msgid
    return None


def _store_created(message_id: int, msgid: str, fail_list: list[str]) -> None:
    with transaction.atomic():
        message = MassMessage.objects.select_for_update().get(id=message_id)
        message.msgid = msgid
        message.fail_list = fail_list
        message.status = MassMessage.Status.CREATED
        message.created_task_at = timezone.now()
        message.last_error = ""
        message.save(update_fields=["msgid", "fail_list", "status", "created_task_at", "last_error"])
        if fail_list:
            CampaignRecipient.objects.filter(mass_message=message, external_userid__in=fail_list).update(
                status=CampaignRecipient.Status.REJECTED
            )


def mass_message_send(message_id: int) -> str:
    """Create the WeCom task for one MassMessage; the resulting status. Raises PushRetry when worth retrying."""
    with transaction.atomic():
        message = (
            MassMessage.objects.select_for_update().select_related("campaign", "sender").filter(id=message_id).first()
        )
        if message is None:
            return "missing"
        if message.status not in (MassMessage.Status.PENDING, MassMessage.Status.SENDING):
            return message.status
        if message.campaign.status != Campaign.Status.RUNNING:
            message.status = MassMessage.Status.CANCELLED
            message.save(update_fields=["status"])
            CampaignRecipient.objects.filter(mass_message=message, status=CampaignRecipient.Status.PENDING).update(
                status=CampaignRecipient.Status.CANCELLED
            )
            return message.status
        recovering = message.status == MassMessage.Status.SENDING
        if not recovering:
            message.status = MassMessage.Status.SENDING
            message.sending_at = timezone.now()
            message.attempts += 1
            message.save(update_fields=["status", "sending_at", "attempts"])
    if recovering:
        eids = _recipient_eids(message)  # the list a crashed attempt may have sent
        try:
            msgid = _find_created_task(message, eids)
        except WeComError as exc:
            raise PushRetry(f"recovery lookup failed: {exc}") from exc
        if msgid:
            _store_created(message.id, msgid, list(message.fail_list or []))
            return MassMessage.Status.CREATED
        if timezone.now() - message.sending_at < RECOVERY_GRACE:
            raise PushRetry("a previous attempt may have created the task; waiting before resending")
        with transaction.atomic():  # nothing was created: this attempt sends it
            MassMessage.objects.filter(id=message.id, status=MassMessage.Status.SENDING).update(
                sending_at=timezone.now(), attempts=message.attempts + 1
            )
    _skip_without_consent(message)  # "before the next send": withdrawn since launch means not sent
    eids = _recipient_eids(message)
    if not eids:
        with transaction.atomic():
            MassMessage.objects.filter(id=message.id).update(status=MassMessage.Status.DONE)
        from crm.services.campaign_runs import campaign_finish_if_complete

        campaign_finish_if_complete(message.campaign_id)  # no poll will come for a message never sent
        return MassMessage.Status.DONE
    try:
        data = get_client().add_msg_template(**_body(message, eids))
    except WeComError as exc:
        MassMessage.objects.filter(id=message.id).update(last_error=str(exc)[:512])
        if exc.retryable:
            # Left "sending": a timeout may still have created the task, so the retry goes through the lookup.
            raise PushRetry(str(exc)) from exc
        with transaction.atomic():
            MassMessage.objects.filter(id=message.id).update(status=MassMessage.Status.FAILED)
            CampaignRecipient.objects.filter(mass_message=message, status=CampaignRecipient.Status.PENDING).update(
                status=CampaignRecipient.Status.REJECTED
            )
        from crm.services.campaign_runs import campaign_finish_if_complete

        campaign_finish_if_complete(message.campaign_id)
        return MassMessage.Status.FAILED
    _store_created(message.id, str(data.get("msgid") or ""), list(data.get("fail_list") or []))
    return MassMessage.Status.CREATED


def mass_message_poll(message_id: int) -> dict:
    """Read the task's send results and move each recipient to delivered / not_friend / limit_reached."""
    message = MassMessage.objects.select_related("sender").filter(id=message_id).first()
    if message is None or message.status != MassMessage.Status.CREATED or not message.msgid:
        return {}
    client = get_client()
    counts: dict[str, int] = {}
    try:
        results = list(client.iter_groupmsg_send_result(message.msgid, message.sender.userid))
    except WeComError as exc:
        if exc.retryable:  # 41063: still being dispatched
            return {}
        raise
    by_status: dict[str, list[str]] = {}
    sent_at: dict[str, int] = {}
    for row in results:
        status = WECOM_STATUS.get(int(row.get("status") or 0))
        eid = row.get("external_userid")
        if status and eid:
            by_status.setdefault(status, []).append(eid)
            if row.get("send_time"):
                sent_at[eid] = int(row["send_time"])
    with transaction.atomic():
        for status, eids in by_status.items():
            for start in range(0, len(eids), 1000):
                chunk = eids[start : start + 1000]
                qs = CampaignRecipient.objects.filter(
                    mass_message=message, external_userid__in=chunk, status=CampaignRecipient.Status.PENDING
                )
                if status == CampaignRecipient.Status.DELIVERED:
                    rows = list(qs)
                    stamp = timezone.now()
                    for recipient in rows:
                        ts = sent_at.get(recipient.external_userid)
                        recipient.status = status
                        recipient.sent_at = datetime.fromtimestamp(ts, tz=UTC) if ts else None
                        recipient.updated_at = stamp
                    CampaignRecipient.objects.bulk_update(rows, ["status", "sent_at", "updated_at"], batch_size=500)
                    counts[status] = counts.get(status, 0) + len(rows)
                else:
                    counts[status] = counts.get(status, 0) + qs.update(status=status)
        MassMessage.objects.filter(id=message.id).update(last_polled_at=timezone.now())
        pending = CampaignRecipient.objects.filter(mass_message=message, status=CampaignRecipient.Status.PENDING)
        if not pending.exists():
            MassMessage.objects.filter(id=message.id, status=MassMessage.Status.CREATED).update(
                status=MassMessage.Status.DONE
            )
    from crm.services.campaign_runs import campaign_finish_if_complete

    campaign_finish_if_complete(message.campaign_id)
    return counts


def mass_messages_to_poll() -> list[int]:
    return list(MassMessage.objects.filter(status=MassMessage.Status.CREATED).values_list("id", flat=True)[:5000])


def mass_messages_to_resend(older_than: timedelta = timedelta(minutes=2)) -> list[int]:
    """Pending/sending rows of running campaigns whose task message may have been lost: queued again by beat."""
    cutoff = timezone.now() - older_than
    return list(
        MassMessage.objects.filter(
            campaign__status=Campaign.Status.RUNNING,
            status__in=[MassMessage.Status.PENDING, MassMessage.Status.SENDING],
            created_at__lt=cutoff,
        ).values_list("id", flat=True)[:1000]
    )


def mass_message_cancel(message_id: int) -> bool:
    """cancel_groupmsg_send for a created task; recipients not yet sent become cancelled after a last poll."""
    message = MassMessage.objects.filter(id=message_id).first()
    if message is None or not message.msgid:
        return False
    try:
        get_client().cancel_groupmsg_send(message.msgid)
    except WeComError as exc:
        if exc.errcode != 41093:  # already cancelled is fine
            logger.warning("cancel_groupmsg_send failed", extra={"msgid": message.msgid, "errcode": exc.errcode})
            return False
    try:
        mass_message_poll(message.id)
    except WeComError:
        pass
    with transaction.atomic():
        CampaignRecipient.objects.filter(mass_message=message, status=CampaignRecipient.Status.PENDING).update(
            status=CampaignRecipient.Status.CANCELLED
        )
        MassMessage.objects.filter(
            id=message.id, status__in=[MassMessage.Status.CREATED, MassMessage.Status.SENDING]
        ).update(status=MassMessage.Status.CANCELLED)
    return True


def mass_message_remind(message_id: int) -> bool:
    """remind_groupmsg_send; False when WeCom refuses (41094: 3 reminders per 24 h already used)."""
    message = MassMessage.objects.filter(id=message_id).first()
    if message is None or not message.msgid:
        return False
    try:
        get_client().remind_groupmsg_send(message.msgid)
    except WeComError as exc:
        logger.info("remind_groupmsg_send refused", extra={"msgid": message.msgid, "errcode": exc.errcode})
        return False
    MassMessage.objects.filter(id=message.id).update(reminders=message.reminders + 1)
    return True
