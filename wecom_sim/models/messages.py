"""Mass-message tasks, their per-sender tasks and per-recipient results, app messages, shopper inboxes."""

from __future__ import annotations

from django.db import models

from wecom_sim.models.world import SimCorp, SimShopper


class SimMassMessage(models.Model):
    """A mass-message task from add_msg_template; nothing is delivered until a sender confirms."""

    corp = models.ForeignKey(SimCorp, on_delete=models.CASCADE, related_name="mass_messages")
    msgid = models.CharField(max_length=64, unique=True)
    chat_type = models.CharField(max_length=8, default="single")
    creator = models.CharField(max_length=64, blank=True)
    create_type = models.IntegerField(default=0)
    text = models.JSONField(default=dict)
    attachments = models.JSONField(default=list)
    created_at = models.DateTimeField()
    cancelled = models.BooleanField(default=False)
    reminds = models.JSONField(default=list)

    def __str__(self) -> str:
        return self.msgid


class SimMassTask(models.Model):
    """One sender's part of a mass message: status 0 not sent, 2 sent (confirmed)."""

    message = models.ForeignKey(SimMassMessage, on_delete=models.CASCADE, related_name="tasks")
    userid = models.CharField(max_length=64)
    status = models.IntegerField(default=0)
    send_time = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["message", "userid"], name="wecomsim_masstask_unique")]

    def __str__(self) -> str:
        return f"{self.userid} {self.status}"


class SimMassResult(models.Model):
    """One recipient of a mass message: 0 pending, 1 sent, 2 not a friend, 3 receive quota reached."""

    # No index of its own: wecomsim_massresult_page starts with it (one index less to write per recipient).
    message = models.ForeignKey(SimMassMessage, on_delete=models.CASCADE, related_name="results", db_index=False)
    userid = models.CharField(max_length=64)
    external_userid = models.CharField(max_length=64, blank=True)
    chat_id = models.CharField(max_length=64, blank=True)
    status = models.IntegerField(default=0)
    send_time = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # get_groupmsg_send_result pages one sender's results by id (cursor = last id); confirmation reads them.
            models.Index(fields=["message", "userid", "id"], name="wecomsim_massresult_page"),
            # A group's receive quota: its sent mass messages since the window's start. Group rows only, and
            # status / send_time left out: confirming a single-chat task's 10,000 results then changes no indexed
            # column, and with the table's fillfactor (migration 0005) each row's update stays on its page (HOT),
            # writing no index entry at all.
            models.Index(fields=["chat_id"], name="wecomsim_massresult_group", condition=models.Q(chat_id__gt="")),
        ]

    def __str__(self) -> str:
        return f"{self.userid}->{self.external_userid or self.chat_id} {self.status}"


class SimInboxMessage(models.Model):
    """A message that reached a shopper's WeChat: welcome, mass or group message."""

    # No index of its own: wecomsim_inbox_quota starts with it.
    shopper = models.ForeignKey(SimShopper, on_delete=models.CASCADE, related_name="inbox", db_index=False)
    kind = models.CharField(max_length=16)
    from_userid = models.CharField(max_length=64, blank=True)
    text = models.TextField(blank=True)
    attachments = models.JSONField(default=list)
    ref = models.CharField(max_length=64, blank=True)
    received_at = models.DateTimeField()

    class Meta:
        indexes = [
            # The receive quota: a shopper's mass messages since the window's start (one probe per recipient).
            models.Index(fields=["shopper", "kind", "received_at"], name="wecomsim_inbox_quota"),
            # admin/deliveries by msgid.
            models.Index(fields=["ref"], name="wecomsim_inbox_ref"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} from {self.from_userid}"


class SimAppMessage(models.Model):
    """An app message sent to members through message/send."""

    corp = models.ForeignKey(SimCorp, on_delete=models.CASCADE, related_name="app_messages")
    msgid = models.CharField(max_length=64, unique=True)
    touser = models.JSONField(default=list)
    msgtype = models.CharField(max_length=32)
    body = models.JSONField(default=dict)
    sent_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.msgid
