"""Staff: WeCom members who can own customer relationships, and the handover of their customers and groups."""

from django.db import models


class Staff(models.Model):
    """A WeCom member (active or resigned). Deactivating staff never deletes their contacts."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        RESIGNED = "resigned", "Resigned"

    userid = models.CharField(max_length=64, unique=True, help_text="WeCom member userid (case-insensitive).")
    name = models.CharField(max_length=128, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE, db_index=True)
    has_customer_contact = models.BooleanField(default=True, help_text="In get_follow_user_list.")
    resigned_at = models.DateTimeField(null=True, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["userid"]
        verbose_name_plural = "staff"

    def __str__(self) -> str:
        return f"{self.name or self.userid} ({self.userid})"

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class Handover(models.Model):
    """One handover of a staff member's customers (and groups) to one or several takeovers."""

    class Kind(models.TextChoices):
        RESIGNED = "resigned", "Resigned (离职继承)"
        ON_THE_JOB = "onjob", "On the job (在职继承)"

    class Status(models.TextChoices):
        PLANNED = "planned", "Planned"
        SUBMITTING = "submitting", "Submitting to WeCom"
        WAITING = "waiting", "Waiting for results"
        FINISHED = "finished", "Finished"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    handover_staff = models.ForeignKey(Staff, on_delete=models.PROTECT, related_name="handovers_given")
    takeovers = models.ManyToManyField(Staff, related_name="handovers_taken")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PLANNED, db_index=True)
    transfer_message = models.CharField(max_length=200, blank=True)
    include_groups = models.BooleanField(default=True)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        permissions = [("handover_staff", "Can hand a staff member's customers and groups over")]

    def __str__(self) -> str:
        return f"Handover #{self.pk} of {self.handover_staff_id} ({self.kind})"


class HandoverItem(models.Model):
    """One customer in a handover, tracked from planned to WeCom's final transfer result."""

    class Status(models.TextChoices):
        PLANNED = "planned", "Planned"
        WAITING = "waiting", "Waiting (24 h)"
        DONE = "done", "Done"
        REFUSED = "refused", "Customer refused"
        LIMIT = "limit", "Takeover at customer limit"
        FAILED = "failed", "Failed"

    FINAL = (Status.DONE, Status.REFUSED, Status.LIMIT, Status.FAILED)

    handover = models.ForeignKey(Handover, on_delete=models.CASCADE, related_name="items")
    contact = models.ForeignKey("crm.Contact", on_delete=models.PROTECT, related_name="handover_items")
    external_userid = models.CharField(max_length=64)
    takeover = models.ForeignKey(Staff, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PLANNED, db_index=True)
    errcode = models.IntegerField(null=True, blank=True)
    batch_no = models.PositiveIntegerField(default=0)
    submitted_at = models.DateTimeField(null=True, blank=True)
    takeover_time = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["handover", "external_userid"], name="uniq_handover_item_contact"),
        ]

    def __str__(self) -> str:
        return f"{self.external_userid} -> {self.takeover_id} ({self.status})"


class GroupHandoverItem(models.Model):
    """One customer group in a handover (groupchat/transfer: immediate, partial failures listed)."""

    class Status(models.TextChoices):
        PLANNED = "planned", "Planned"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    handover = models.ForeignKey(Handover, on_delete=models.CASCADE, related_name="group_items")
    group = models.ForeignKey("crm.CustomerGroup", on_delete=models.PROTECT, related_name="handover_items")
    new_owner = models.ForeignKey(Staff, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PLANNED, db_index=True)
    errcode = models.IntegerField(null=True, blank=True)
    errmsg = models.CharField(max_length=256, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["handover", "group"], name="uniq_handover_group")]

    def __str__(self) -> str:
        return f"{self.group_id} -> {self.new_owner_id} ({self.status})"
