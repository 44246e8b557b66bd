"""CRM models: campaigns, their recipients, and the WeCom mass-message tasks that carry them."""

from django.db import models

__all__ = ["Campaign", "CampaignRecipient", "LuckyDraw", "LuckyDrawEntry", "MassMessage"]


class Campaign(models.Model):
    """A scheduled mass message to a segment of contacts, optionally with a red-packet pool."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SCHEDULED = "scheduled", "Scheduled"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        CANCELLED = "cancelled", "Cancelled"

    name = models.CharField(max_length=128)
    # {"tags": [tag ids], "tags_match": "any"|"all", "exclude_tags": [...], "channels": [ids], "staff": [userids]}
    segment = models.JSONField(default=dict, blank=True)
    text = models.TextField(max_length=4000)
    link_title = models.CharField(max_length=128, blank=True)
    link_url = models.URLField(max_length=1024, blank=True)
    link_desc = models.CharField(max_length=512, blank=True)
    scheduled_at = models.DateTimeField(null=True, blank=True, db_index=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT, db_index=True)
    launched_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"


class MassMessage(models.Model):
    """One add_msg_template task: a (campaign, sender, batch) with its idempotency key and WeCom msgid."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"  # not yet handed to WeCom
        SENDING = "sending", "Sending"  # committed before the call; msgid unknown until it returns
        CREATED = "created", "Created"  # WeCom created the task; staff confirm in their client
        DONE = "done", "Done"  # every recipient has a final status
        FAILED = "failed", "Failed"  # WeCom refused the task permanently
        CANCELLED = "cancelled", "Cancelled"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="mass_messages")
    sender = models.ForeignKey("crm.Staff", on_delete=models.PROTECT, related_name="+")
    batch_no = models.PositiveIntegerField()
    idempotency_key = models.CharField(max_length=96, unique=True)
    # Per-recipient link (red-packet campaigns): the text as sent, so a retry sends the very same content.
    text = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    msgid = models.CharField(max_length=64, unique=True, null=True, blank=True)
    fail_list = models.JSONField(default=list, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=512, blank=True)
    sending_at = models.DateTimeField(null=True, blank=True)
    created_task_at = models.DateTimeField(null=True, blank=True)
    last_polled_at = models.DateTimeField(null=True, blank=True)
    reminders = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "sender", "batch_no"], name="uniq_massmsg_campaign_sender_batch"
            )
        ]

    def __str__(self) -> str:
        return self.idempotency_key


class CampaignRecipient(models.Model):
    """A contact a campaign addresses: at most one per (campaign, contact), so at most one message."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"  # queued, or WeCom status 0 (staff has not confirmed)
        DELIVERED = "delivered", "Delivered"  # WeCom status 1
        NOT_FRIEND = "not_friend", "Not a friend"  # WeCom status 2
        LIMIT_REACHED = "limit_reached", "Receive limit reached"  # WeCom status 3
        REJECTED = "rejected", "Rejected by WeCom"  # in add_msg_template's fail_list
        NO_SENDER = "no_sender", "No active follow staff"
        CANCELLED = "cancelled", "Cancelled"

    FINAL = (
        Status.DELIVERED, Status.NOT_FRIEND, Status.LIMIT_REACHED, Status.REJECTED, Status.NO_SENDER, Status.CANCELLED
    )

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="recipients")
    contact = models.ForeignKey("crm.Contact", on_delete=models.CASCADE, related_name="campaign_recipients")
    external_userid = models.CharField(max_length=64)
    sender = models.ForeignKey("crm.Staff", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    mass_message = models.ForeignKey(
        MassMessage, null=True, blank=True, on_delete=models.SET_NULL, related_name="recipients"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["campaign", "contact"], name="uniq_recipient_campaign_contact")]
        indexes = [models.Index(fields=["mass_message", "external_userid"])]

    def __str__(self) -> str:
        return f"{self.campaign_id}:{self.contact_id} {self.status}"


class LuckyDraw(models.Model):
    """A lucky draw attached to a campaign: prizes drawn from a fixed pool, one draw per customer."""

    campaign = models.OneToOneField(Campaign, on_delete=models.CASCADE, related_name="lucky_draw")
    # [{"name": "Coupon 20", "count": 10}, ...]; the rest of the draws are "no prize".
    prizes = models.JSONField(default=list)
    win_rate_percent = models.PositiveSmallIntegerField(default=100)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"draw for {self.campaign_id}"


class LuckyDrawEntry(models.Model):
    """One customer's draw (UNIQUE per draw and contact: drawing twice returns the first result)."""

    draw = models.ForeignKey(LuckyDraw, on_delete=models.CASCADE, related_name="entries")
    contact = models.ForeignKey("crm.Contact", on_delete=models.CASCADE, related_name="+")
    prize = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["draw", "contact"], name="uniq_luckydraw_contact")]

    def __str__(self) -> str:
        return f"{self.contact_id}: {self.prize or 'no prize'}"
