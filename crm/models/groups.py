"""Customer groups (WeCom 客户群), their members, join ways (group QR codes) and VIP group invites."""

from django.db import models

__all__ = ["CustomerGroup", "GroupJoinWay", "GroupMember", "VipInvite"]


class CustomerGroup(models.Model):
    """A WeCom customer group (`wr...` chat_id), kept true by change_external_chat callbacks."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        DISMISSED = "dismissed", "Dismissed"

    chat_id = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=128, blank=True)
    owner = models.ForeignKey("crm.Staff", null=True, blank=True, on_delete=models.SET_NULL, related_name="groups")
    is_vip = models.BooleanField(default=False, db_index=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE, db_index=True)
    notice = models.TextField(blank=True)
    member_version = models.CharField(max_length=64, blank=True)
    group_created_at = models.DateTimeField(null=True, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name or self.chat_id


class GroupMember(models.Model):
    """A member of a customer group (staff or customer); left_at is set, never deleted, when they leave."""

    class Type(models.IntegerChoices):
        STAFF = 1, "Corp member"
        EXTERNAL = 2, "External contact"

    group = models.ForeignKey(CustomerGroup, on_delete=models.CASCADE, related_name="members")
    contact = models.ForeignKey(
        "crm.Contact", null=True, blank=True, on_delete=models.SET_NULL, related_name="group_memberships"
    )
    member_id = models.CharField(max_length=64, help_text="userid (staff) or external_userid (customer).")
    type = models.PositiveSmallIntegerField(choices=Type.choices, default=Type.EXTERNAL)
    name = models.CharField(max_length=128, blank=True)
    join_scene = models.PositiveSmallIntegerField(default=0, help_text="1 invited, 2 by link, 3 scanned group QR.")
    join_state = models.CharField(max_length=64, blank=True, help_text="Join-way state the member came through.")
    joined_at = models.DateTimeField(null=True, blank=True)
    left_at = models.DateTimeField(null=True, blank=True, db_index=True)
    quit_scene = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["group", "joined_at"]
        constraints = [models.UniqueConstraint(fields=["group", "member_id"], name="uniq_group_member")]

    def __str__(self) -> str:
        return f"{self.member_id} in {self.group_id}"

    @property
    def is_present(self) -> bool:
        return self.left_at is None


class GroupJoinWay(models.Model):
    """A group join way (加入群聊 QR, groupchat/add_join_way); auto_create_room rolls over to a new group when full."""

    state = models.CharField(max_length=30, unique=True)
    config_id = models.CharField(max_length=64, unique=True)
    qr_code = models.URLField(max_length=1024, blank=True)
    is_vip = models.BooleanField(default=False)
    groups = models.ManyToManyField(CustomerGroup, related_name="join_ways", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"join way {self.state} ({self.config_id})"


class VipInvite(models.Model):
    """The VIP group invite sent to one contact; unique per (contact, state) so a tier re-evaluation never resends."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent (task created)"
        FAILED = "failed", "Failed"
        JOINED = "joined", "Joined the group"

    contact = models.ForeignKey("crm.Contact", on_delete=models.CASCADE, related_name="vip_invites")
    state = models.CharField(max_length=30, default="vip", help_text="Join-way state this invite is for.")
    join_way = models.ForeignKey(GroupJoinWay, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    sender = models.ForeignKey("crm.Staff", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    msgid = models.CharField(max_length=64, blank=True)
    errcode = models.IntegerField(null=True, blank=True)
    errmsg = models.CharField(max_length=512, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    joined_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["contact", "state"], name="uniq_vip_invite_contact_state")]

    def __str__(self) -> str:
        return f"VIP invite {self.contact_id} ({self.status})"
