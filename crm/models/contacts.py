"""Company-owned contacts (WeCom external contacts), their follow relations to staff, timeline and welcome sends."""

from django.db import models


class Contact(models.Model):
    """A customer owned by the company, not by the staff member who added them."""

    class Type(models.IntegerChoices):
        WECHAT = 1, "WeChat user"
        WECOM = 2, "WeCom user"

    class Gender(models.IntegerChoices):
        UNKNOWN = 0, "Unknown"
        MALE = 1, "Male"
        FEMALE = 2, "Female"

    external_userid = models.CharField(max_length=64, unique=True)
    unionid = models.CharField(max_length=64, blank=True, db_index=True)
    name = models.CharField(max_length=128, blank=True)
    type = models.PositiveSmallIntegerField(choices=Type.choices, default=Type.WECHAT)
    gender = models.PositiveSmallIntegerField(choices=Gender.choices, default=Gender.UNKNOWN)
    avatar = models.URLField(max_length=512, blank=True)
    corp_name = models.CharField(max_length=128, blank=True)
    # Phone is encrypted at rest; phone_hash (keyed HMAC of the normalised number) is what we match on.
    phone_encrypted = models.TextField(blank=True)
    phone_hash = models.CharField(max_length=64, blank=True, db_index=True)
    # Given by the customer or staff (console, API); loyalty's birthday bonus and birthday-week multiplier read it.
    birthday = models.DateField(null=True, blank=True)
    # The channel that first brought this customer (attribution); set once, on the first add.
    channel = models.ForeignKey(
        "crm.Channel", null=True, blank=True, on_delete=models.SET_NULL, related_name="contacts"
    )
    first_added_at = models.DateTimeField(null=True, blank=True, db_index=True)
    synced_at = models.DateTimeField(null=True, blank=True)
    # Set by crm.services.erasure: the row is an anonymised placeholder; pages, claims and cards refuse it.
    erased_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        # Data leaving the CRM, and data destroyed, each need their own grant (crm.services.roles).
        permissions = [
            ("export_contact", "Can export contacts (CSV list and a person's data)"),
            ("erase_contact", "Can erase a contact's personal data"),
        ]

    def __str__(self) -> str:
        return self.name or self.external_userid


class FollowRelation(models.Model):
    """Staff member <-> contact: one per pair, kept (never deleted) when either side deletes the other."""

    staff = models.ForeignKey("crm.Staff", on_delete=models.PROTECT, related_name="follows")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="follows")
    remark = models.CharField(max_length=64, blank=True)
    description = models.CharField(max_length=256, blank=True)
    state = models.CharField(max_length=64, blank=True, help_text="Contact-way state this add came through.")
    add_way = models.IntegerField(default=0)
    oper_userid = models.CharField(max_length=64, blank=True)
    # WeCom corp tag ids this staff member put on the contact (the company view is ContactTag).
    wecom_tag_ids = models.JSONField(default=list, blank=True)
    added_at = models.DateTimeField(null=True, blank=True)
    deleted_by_staff_at = models.DateTimeField(null=True, blank=True)
    deleted_by_customer_at = models.DateTimeField(null=True, blank=True)
    # When a full sync or reconciliation last saw WeCom list this pair (relations not seen are drift).
    last_seen_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["staff", "contact"], name="uniq_follow_staff_contact")]
        # Segments by staff and the choice of senders read only relations staff have not deleted.
        indexes = [
            models.Index(
                fields=["staff", "contact"], condition=models.Q(deleted_by_staff_at__isnull=True),
                name="follow_active_staff_contact",
            ),
            # The other way round for "does this contact have an active follow by one of these staff": an
            # index-only probe per candidate contact once tags/channels have narrowed the set.
            models.Index(
                fields=["contact", "staff"], condition=models.Q(deleted_by_staff_at__isnull=True),
                name="follow_active_contact_staff",
            ),
            # The dashboard's adds and losses per day (crm.selectors.dashboard): range scans by time.
            models.Index(fields=["added_at"], name="follow_added_at"),
            models.Index(
                fields=["deleted_by_staff_at"], condition=models.Q(deleted_by_staff_at__isnull=False),
                name="follow_deleted_by_staff_at",
            ),
            models.Index(
                fields=["deleted_by_customer_at"], condition=models.Q(deleted_by_customer_at__isnull=False),
                name="follow_deleted_by_customer_at",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.staff_id} -> {self.contact_id}"

    @property
    def is_active(self) -> bool:
        return self.deleted_by_staff_at is None


class ContactEvent(models.Model):
    """One row of a contact's timeline: every state change of the contact writes one."""

    class Kind(models.TextChoices):
        ADDED = "added", "Added a staff member"
        HALF_ADDED = "half_added", "Added (awaiting staff confirmation)"
        EDITED = "edited", "Remark or tags edited"
        DELETED_BY_STAFF = "deleted_by_staff", "Deleted by staff"
        DELETED_BY_CUSTOMER = "deleted_by_customer", "Deleted the staff member"
        CHANNEL = "channel", "Attributed to channel"
        WELCOME = "welcome", "Welcome message"
        JOINED_GROUP = "joined_group", "Joined a group"
        LEFT_GROUP = "left_group", "Left a group"
        TAGGED = "tagged", "Tagged"
        UNTAGGED = "untagged", "Untagged"
        VIP_INVITED = "vip_invited", "Invited to VIP group"
        TRANSFER = "transfer", "Handover"
        SYNC_REPAIR = "sync_repair", "Repaired by reconciliation"
        CONSENT = "consent", "Consent changed"
        DATA_RIGHTS = "data_rights", "Data export or erasure"
        CAMPAIGN_EXCLUDED = "campaign_excluded", "Left out of a campaign at send time"
        PROFILE_UPDATED = "profile_updated", "Profile updated"
        # Written by loyalty (loyalty.services.tiers, TIMELINE_KIND) when a card moves tier: crm only names it.
        TIER_CHANGED = "tier_changed", "Tier changed"

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=32, choices=Kind.choices, db_index=True)
    staff = models.ForeignKey("crm.Staff", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    data = models.JSONField(default=dict, blank=True)
    occurred_at = models.DateTimeField(db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [models.Index(fields=["contact", "-occurred_at"], name="contactevent_timeline")]

    def __str__(self) -> str:
        return f"{self.contact_id} {self.kind} @ {self.occurred_at:%Y-%m-%d %H:%M}"


class WelcomeMessage(models.Model):
    """The welcome sent with one WelcomeCode; the unique key makes a redelivered callback never send twice."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        ALREADY_SENT = "already_sent", "Already sent (41051)"
        EXPIRED = "expired", "Code expired (41050)"
        FAILED = "failed", "Failed"

    follow = models.ForeignKey(FollowRelation, on_delete=models.CASCADE, related_name="welcomes")
    idempotency_key = models.CharField(max_length=200, unique=True)
    welcome_code = models.CharField(max_length=256)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    text = models.TextField(blank=True)
    link_url = models.URLField(max_length=1024, blank=True)
    errcode = models.IntegerField(null=True, blank=True)
    errmsg = models.CharField(max_length=512, blank=True)
    event_time = models.DateTimeField(null=True, blank=True, help_text="CreateTime of the add event (20 s window).")
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"welcome {self.follow_id} ({self.status})"


class SyncRun(models.Model):
    """A full sync or a reconciliation pass; its checkpoint lets a crashed run resume where it stopped."""

    class Kind(models.TextChoices):
        FULL = "full", "Full sync"
        RECONCILE = "reconcile", "Reconciliation"

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"
        FAILED = "failed", "Failed"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING, db_index=True)
    # {"staff": [userids to do], "done": [userids done], "userid": current, "cursor": next page cursor}
    checkpoint = models.JSONField(default=dict, blank=True)
    pages = models.PositiveIntegerField(default=0)
    contacts_seen = models.PositiveIntegerField(default=0)
    report = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.status})"
