"""The corp, its members, the WeChat users (shoppers), their friendships and the corp's tags."""

from __future__ import annotations

from django.db import models


class SimCorp(models.Model):
    """A simulated WeCom corp with its app, callback config, knobs and the shared clock offset."""

    RECEIVE_QUOTAS = [("month_days", "month_days"), ("week7", "week7"), ("day1", "day1")]

    corpid = models.CharField(max_length=64, unique=True)
    corpsecret = models.CharField(max_length=128)
    agentid = models.IntegerField()
    mch_id = models.CharField(max_length=32, blank=True)
    # Empty means "read settings.WECOM_SIM at delivery time".
    callback_url = models.CharField(max_length=500, blank=True)
    callback_token = models.CharField(max_length=64, blank=True)
    encoding_aes_key = models.CharField(max_length=43, blank=True)
    clock_offset = models.FloatField(default=0.0)
    confirm_delay_seconds = models.FloatField(null=True, blank=True)
    receive_quota = models.CharField(max_length=16, choices=RECEIVE_QUOTAS, default="month_days")
    token_expires_in = models.IntegerField(default=7200)
    expired_token_errcode = models.IntegerField(default=42001)
    callback_timeout = models.FloatField(default=5.0)
    callback_retries = models.IntegerField(default=3)
    callback_retry_delay = models.FloatField(default=1.0)
    rate_limit_per_minute = models.IntegerField(default=10000)
    concurrency_limit = models.IntegerField(default=5)
    friend_limit = models.IntegerField(default=5000)
    group_size_limit = models.IntegerField(default=500)
    merchant_balance_fen = models.BigIntegerField(default=10_000_000_000)
    duplicate_rate = models.FloatField(default=0.0)
    reorder = models.BooleanField(default=False)
    drop_rate = models.FloatField(default=0.0)
    welcome_code_ttl = models.IntegerField(default=20)
    transfer_wait_seconds = models.IntegerField(default=86400)
    redpack_refund_seconds = models.IntegerField(default=86400)
    mass_dispatch_seconds = models.FloatField(default=0.0)
    # skip-verify adds: seconds until the member confirms (0 = at once, null = only via admin confirm_add)
    add_confirm_seconds = models.FloatField(null=True, blank=True, default=0.0)
    welcome_send_delay_ms = models.IntegerField(default=0)  # a send_welcome_msg stays in flight this long (41096)
    ip_rate_limit_per_minute = models.IntegerField(default=20000)
    groupchat_visible_limit = models.IntegerField(default=1000)  # groupchat/list without owner_filter: 81017 above
    redpack_query_delay_seconds = models.FloatField(default=0.0)  # query answers NOT_FOUND this long after sending

    def __str__(self) -> str:
        return self.corpid


class SimAccessToken(models.Model):
    """An access_token issued by gettoken; valid until expires_at on the simulated clock."""

    corp = models.ForeignKey(SimCorp, on_delete=models.CASCADE, related_name="tokens")
    token = models.CharField(max_length=512, unique=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    revoked = models.BooleanField(default=False)

    def __str__(self) -> str:
        return self.token[:12] + "..."


class SimMember(models.Model):
    """A staff member of the corp (成员)."""

    corp = models.ForeignKey(SimCorp, on_delete=models.CASCADE, related_name="members")
    userid = models.CharField(max_length=64)
    name = models.CharField(max_length=64)
    department = models.JSONField(default=list)
    position = models.CharField(max_length=64, blank=True)
    mobile = models.CharField(max_length=32, blank=True)
    gender = models.CharField(max_length=1, default="0")
    has_customer_contact = models.BooleanField(default=True)
    activated = models.BooleanField(default=True)
    resigned_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["corp", "userid"], name="wecomsim_member_unique")]

    def __str__(self) -> str:
        return self.userid


class SimShopper(models.Model):
    """A WeChat user as the corp sees them: a `wm` external_userid and a pay openid."""

    corp = models.ForeignKey(SimCorp, on_delete=models.CASCADE, related_name="shoppers")
    external_userid = models.CharField(max_length=64, unique=True)
    openid = models.CharField(max_length=64, unique=True)
    unionid = models.CharField(max_length=64, blank=True)
    name = models.CharField(max_length=64)
    gender = models.IntegerField(default=0)
    phone = models.CharField(max_length=32, blank=True)
    avatar = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.external_userid})"


class SimFriendship(models.Model):
    """A follow relation member <-> shopper. member_deleted: gone (84061); customer_deleted: one-way;
    confirmed False: a skip-verify (half) add the member has not confirmed yet (84061 too)."""

    member = models.ForeignKey(SimMember, on_delete=models.CASCADE, related_name="friendships")
    shopper = models.ForeignKey(SimShopper, on_delete=models.CASCADE, related_name="friendships")
    remark = models.CharField(max_length=64, blank=True)
    description = models.CharField(max_length=255, blank=True)
    remark_company = models.CharField(max_length=64, blank=True)
    remark_mobiles = models.JSONField(default=list)
    createtime = models.DateTimeField()
    add_way = models.IntegerField(default=1)
    state = models.CharField(max_length=64, blank=True)
    oper_userid = models.CharField(max_length=64, blank=True)
    tag_ids = models.JSONField(default=list)
    member_deleted = models.BooleanField(default=False)
    customer_deleted = models.BooleanField(default=False)
    confirmed = models.BooleanField(default=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["member", "shopper"], name="wecomsim_friend_unique")]

    def __str__(self) -> str:
        return f"{self.member_id}<->{self.shopper_id}"


class SimTagGroup(models.Model):
    """A corp customer-tag group."""

    corp = models.ForeignKey(SimCorp, on_delete=models.CASCADE, related_name="tag_groups")
    group_id = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=64)
    order = models.BigIntegerField(default=0)
    create_time = models.DateTimeField()
    deleted = models.BooleanField(default=False)
    # Made through add_corp_tag by the corp's app: only those may be edited or deleted through the API
    # ("应用仅能编辑和删除本应用创建的标签"); the admin console's are the console's.
    by_app = models.BooleanField(default=False)

    def __str__(self) -> str:
        return self.name


class SimTag(models.Model):
    """A corp customer tag inside a group."""

    group = models.ForeignKey(SimTagGroup, on_delete=models.CASCADE, related_name="tags")
    tag_id = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=64)
    order = models.BigIntegerField(default=0)
    create_time = models.DateTimeField()
    deleted = models.BooleanField(default=False)
    by_app = models.BooleanField(default=False)  # see SimTagGroup.by_app

    def __str__(self) -> str:
        return self.name
