"""CRM models: campaigns, their recipients, and the WeCom mass-message tasks that carry them."""

from django.db import models

__all__ = [
    "Campaign", "CampaignGroupRecipient", "CampaignRecipient", "CampaignRun", "LuckyDraw", "LuckyDrawEntry",
    "MassMessage",
]


class Campaign(models.Model):
    """A mass message to a segment of customers or to customer groups: once, or on a recurring schedule. Each
    occurrence is a CampaignRun with its own recipients and results."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SCHEDULED = "scheduled", "Scheduled"
        RUNNING = "running", "Running"
        PAUSED = "paused", "Paused"
        DONE = "done", "Done"
        CANCELLED = "cancelled", "Cancelled"

    class Target(models.TextChoices):
        SEGMENT = "segment", "A segment of customers"  # chat_type=single
        GROUPS = "groups", "Chosen customer groups"  # chat_type=group, sent by each group's owner
        VIP_GROUPS = "vip_groups", "All VIP groups"

    class Attachment(models.TextChoices):
        NONE = "", "None"
        IMAGE = "image", "Image"
        LINK = "link", "Link"
        MINIPROGRAM = "miniprogram", "Mini program"

    class Recurrence(models.TextChoices):
        ONCE = "once", "Once"
        WEEKLY = "weekly", "Every week"
        MONTHLY = "monthly", "Every month"

    name = models.CharField(max_length=128)
    target = models.CharField(max_length=16, choices=Target.choices, default=Target.SEGMENT)
    # A saved segment, or an inline definition in the same filter language (crm.services.segments).
    saved_segment = models.ForeignKey(
        "crm.Segment", null=True, blank=True, on_delete=models.PROTECT, related_name="campaigns"
    )
    segment = models.JSONField(default=dict, blank=True)
    group_chat_ids = models.JSONField(default=list, blank=True, help_text="chat_ids when target is groups.")
    text = models.TextField(max_length=4000)
    attachment = models.CharField(max_length=16, choices=Attachment.choices, default="", blank=True)
    link_title = models.CharField(max_length=128, blank=True)
    link_url = models.URLField(max_length=1024, blank=True)
    link_desc = models.CharField(max_length=512, blank=True)
    image = models.FileField(upload_to="campaign_images/%Y/%m/", blank=True)
    # WeCom's temporary media id for the image (valid 3 days; uploaded again when older).
    image_media_id = models.CharField(max_length=128, blank=True)
    image_media_at = models.DateTimeField(null=True, blank=True)
    miniprogram_appid = models.CharField(max_length=64, blank=True)
    miniprogram_page = models.CharField(max_length=255, blank=True)
    miniprogram_title = models.CharField(max_length=64, blank=True)
    # One-off: scheduled_at. Recurring: recurrence + weekday/day of month + local time (Asia/Shanghai), driven by
    # a django-celery-beat PeriodicTask.
    scheduled_at = models.DateTimeField(null=True, blank=True, db_index=True)
    recurrence = models.CharField(max_length=8, choices=Recurrence.choices, default=Recurrence.ONCE)
    recur_weekday = models.PositiveSmallIntegerField(null=True, blank=True, help_text="0 Monday .. 6 Sunday.")
    recur_day = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Day of the month, 1..31.")
    recur_time = models.TimeField(null=True, blank=True, help_text="Local time, Asia/Shanghai.")
    recur_until = models.DateTimeField(null=True, blank=True)
    # Occurrences before this moment are never run (set when the schedule is made and on resume): beat catching
    # up on a moment missed while paused, or before the campaign existed, plans nothing.
    schedule_from = models.DateTimeField(null=True, blank=True)
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT, db_index=True)
    paused_at = models.DateTimeField(null=True, blank=True)
    launched_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"


class CampaignRun(models.Model):
    """One occurrence of a campaign: its recipients, planned in resumable chunks, its messages and results."""

    class Status(models.TextChoices):
        PLANNING = "planning", "Planning"
        SENDING = "sending", "Sending"
        PAUSED = "paused", "Paused"
        DONE = "done", "Done"
        CANCELLED = "cancelled", "Cancelled"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="runs")
    # The scheduled moment this run is for (UTC): UNIQUE with the campaign, so beat firing twice plans one run.
    occurrence = models.DateTimeField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PLANNING, db_index=True)
    # Planning resumes after the last contact (or group) id it committed.
    plan_cursor = models.BigIntegerField(default=0)
    planned = models.PositiveIntegerField(default=0)
    audience = models.PositiveIntegerField(null=True, blank=True, help_text="Audience count when the run began.")
    planned_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    paused_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    stats = models.JSONField(default=dict, blank=True, help_text="Recipients per status, refreshed as it runs.")

    class Meta:
        ordering = ["-occurrence", "-id"]
        constraints = [models.UniqueConstraint(fields=["campaign", "occurrence"], name="uniq_run_campaign_occurrence")]

    def __str__(self) -> str:
        return f"{self.campaign_id}@{self.occurrence:%Y-%m-%d %H:%M} ({self.status})"


class MassMessage(models.Model):
    """One add_msg_template task: a (run, sender, batch) with its idempotency key and WeCom msgid."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"  # not yet handed to WeCom
        SENDING = "sending", "Sending"  # committed before the call; msgid unknown until it returns
        CREATED = "created", "Created"  # WeCom created the task; staff confirm in their client
        DONE = "done", "Done"  # every recipient has a final status
        FAILED = "failed", "Failed"  # WeCom refused the task permanently
        EXPIRED = "expired", "Expired"  # staff did not confirm before the deadline
        CANCELLED = "cancelled", "Cancelled"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="mass_messages")
    run = models.ForeignKey(CampaignRun, null=True, blank=True, on_delete=models.CASCADE, related_name="messages")
    chat_type = models.CharField(max_length=8, default="single")
    sender = models.ForeignKey("crm.Staff", on_delete=models.PROTECT, related_name="+")
    batch_no = models.PositiveIntegerField()
    idempotency_key = models.CharField(max_length=96, unique=True)
    # The text as sent, so a retry sends the very same content.
    text = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    # Compare-and-set claim of a send attempt: the attempt's token, written by a conditional UPDATE whose row
    # count is checked; only its holder calls add_msg_template.
    claim_token = models.CharField(max_length=32, blank=True)
    recipients_count = models.PositiveIntegerField(default=0)
    deadline_at = models.DateTimeField(null=True, blank=True, help_text="Unconfirmed after this: expired.")
    poll_cursor = models.CharField(max_length=256, blank=True)
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
            models.UniqueConstraint(fields=["run", "sender", "batch_no"], name="uniq_massmsg_run_sender_batch")
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
        OVER_QUOTA = "over_quota", "Over the receive quota"  # held back by the CRM: see reachable_at
        EXCLUDED = "excluded", "Excluded at send time"  # see reason
        EXPIRED = "expired", "Not confirmed by staff in time"
        CANCELLED = "cancelled", "Cancelled"

    FINAL = (
        Status.DELIVERED, Status.NOT_FRIEND, Status.LIMIT_REACHED, Status.REJECTED, Status.NO_SENDER,
        Status.OVER_QUOTA, Status.EXCLUDED, Status.EXPIRED, Status.CANCELLED,
    )

    class Reason(models.TextChoices):
        NONE = "", "—"
        CONSENT_WITHDRAWN = "consent_withdrawn", "Marketing consent withdrawn"
        CONTACT_DELETED = "contact_deleted", "Contact deleted"
        RELATION_GONE = "relation_gone", "No active relation with the sender"
        ERASED = "erased", "Contact erased"

    # No database constraint on campaign, run, sender and mass_message: the planner writes 50,000 recipients a
    # chunk, and checking their four parents at COMMIT (deferred FKs) took ~1.5 s of a ~3.5 s chunk, measured on
    # PostgreSQL (0.4 s without). All four rows are written by the planner in the same transaction as the
    # recipients, and the ORM still CASCADEs / PROTECTs / SETs NULL on delete. `contact` keeps its constraint:
    # erasure relies on it. run, contact and mass_message need no index of their own: (run, contact),
    # (contact, quota_day) and (mass_message, external_userid) lead with them.
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="recipients", db_constraint=False)
    run = models.ForeignKey(
        CampaignRun, null=True, blank=True, on_delete=models.CASCADE, related_name="recipients",
        db_constraint=False, db_index=False,
    )
    contact = models.ForeignKey(
        "crm.Contact", on_delete=models.CASCADE, related_name="campaign_recipients", db_index=False
    )
    external_userid = models.CharField(max_length=64)
    sender = models.ForeignKey(
        "crm.Staff", null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_constraint=False
    )
    mass_message = models.ForeignKey(
        MassMessage, null=True, blank=True, on_delete=models.SET_NULL, related_name="recipients",
        db_constraint=False, db_index=False,
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    reason = models.CharField(max_length=32, choices=Reason.choices, default="", blank=True)
    # Over quota: when the customer can receive a mass message again (start of the next quota period).
    reachable_at = models.DateTimeField(null=True, blank=True)
    # The local (Asia/Shanghai) day this message counts against the customer's receive quota.
    quota_day = models.DateField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        # UNIQUE (run, contact): a customer gets one recipient row per occurrence, so at most one message.
        constraints = [models.UniqueConstraint(fields=["run", "contact"], name="uniq_recipient_run_contact")]
        indexes = [
            models.Index(fields=["mass_message", "external_userid"]),
            models.Index(fields=["run", "status"], name="recipient_run_status"),
            models.Index(fields=["contact", "quota_day"], name="recipient_contact_quota_day"),
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id}:{self.contact_id} {self.status}"


class CampaignGroupRecipient(models.Model):
    """A customer group a run addresses (chat_type=group): sent by the group's owner, one per (run, group)."""

    Status = CampaignRecipient.Status

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="group_recipients")
    run = models.ForeignKey(CampaignRun, on_delete=models.CASCADE, related_name="group_recipients")
    group = models.ForeignKey("crm.CustomerGroup", on_delete=models.CASCADE, related_name="+")
    chat_id = models.CharField(max_length=64)
    sender = models.ForeignKey("crm.Staff", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    mass_message = models.ForeignKey(
        MassMessage, null=True, blank=True, on_delete=models.SET_NULL, related_name="group_recipients"
    )
    status = models.CharField(max_length=16, choices=CampaignRecipient.Status.choices, default="pending")
    reason = models.CharField(max_length=32, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["run", "group"], name="uniq_group_recipient_run_group")]
        indexes = [models.Index(fields=["mass_message", "chat_id"], name="group_recipient_message_chat")]

    def __str__(self) -> str:
        return f"{self.run_id}:{self.chat_id} {self.status}"


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
