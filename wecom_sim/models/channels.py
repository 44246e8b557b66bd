"""Contact ways, welcome codes, customer groups and their join ways."""

from __future__ import annotations

from django.db import models

from wecom_sim.models.world import SimCorp, SimFriendship


class SimContactWay(models.Model):
    """A 「联系我」 config created through add_contact_way."""

    corp = models.ForeignKey(SimCorp, on_delete=models.CASCADE, related_name="contact_ways")
    config_id = models.CharField(max_length=64, unique=True)
    qr_code = models.CharField(max_length=255)
    type = models.IntegerField(default=1)
    scene = models.IntegerField(default=2)
    style = models.IntegerField(null=True, blank=True)
    remark = models.CharField(max_length=64, blank=True)
    skip_verify = models.BooleanField(default=True)
    state = models.CharField(max_length=64, blank=True, db_index=True)
    users = models.JSONField(default=list)
    party = models.JSONField(default=list)
    extra = models.JSONField(default=dict)
    rr_index = models.IntegerField(default=0)
    created_at = models.DateTimeField()
    deleted = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"{self.config_id} ({self.state})"


class SimWelcomeCode(models.Model):
    """A WelcomeCode from an add event: usable once, within welcome_code_ttl seconds."""

    code = models.CharField(max_length=64, unique=True)
    friendship = models.ForeignKey(SimFriendship, on_delete=models.CASCADE, related_name="welcome_codes")
    issued_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    sending_at = models.DateTimeField(null=True, blank=True)  # real time a send_welcome_msg took it (41096)

    def __str__(self) -> str:
        return self.code


class SimGroupChat(models.Model):
    """A customer group (客户群). status: 0 normal, 1 owner resigned, 2 inheriting, 3 inherited."""

    corp = models.ForeignKey(SimCorp, on_delete=models.CASCADE, related_name="group_chats")
    chat_id = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=128, blank=True)
    owner = models.CharField(max_length=64)
    create_time = models.DateTimeField()
    notice = models.TextField(blank=True)
    member_version = models.CharField(max_length=64, blank=True)
    version_seq = models.IntegerField(default=0)
    status = models.IntegerField(default=0)
    dismissed = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"{self.name} ({self.chat_id})"


class SimGroupMember(models.Model):
    """A member of a customer group: type 1 corp member, 2 external contact."""

    chat = models.ForeignKey(SimGroupChat, on_delete=models.CASCADE, related_name="members")
    userid = models.CharField(max_length=64)
    type = models.IntegerField(default=2)
    unionid = models.CharField(max_length=64, blank=True)
    name = models.CharField(max_length=64, blank=True)
    join_time = models.DateTimeField()
    join_scene = models.IntegerField(default=1)
    invitor = models.CharField(max_length=64, blank=True)
    state = models.CharField(max_length=64, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["chat", "userid"], name="wecomsim_groupmember_unique")]

    def __str__(self) -> str:
        return f"{self.chat_id}:{self.userid}"


class SimJoinWay(models.Model):
    """A 「加入群聊」 config; auto-creates the next room when all its rooms are full."""

    corp = models.ForeignKey(SimCorp, on_delete=models.CASCADE, related_name="join_ways")
    config_id = models.CharField(max_length=64, unique=True)
    qr_code = models.CharField(max_length=255)
    scene = models.IntegerField(default=2)
    remark = models.CharField(max_length=64, blank=True)
    auto_create_room = models.IntegerField(default=1)
    room_base_name = models.CharField(max_length=64, blank=True)
    room_base_id = models.IntegerField(default=1)
    chat_id_list = models.JSONField(default=list)
    state = models.CharField(max_length=64, blank=True, db_index=True)
    created_at = models.DateTimeField()
    deleted = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"{self.config_id} ({self.state})"
