"""Company-owned contacts (WeCom external contacts) and their follow relations to staff."""

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
    # The channel that first brought this customer (attribution); set once, on the first add.
    channel = models.ForeignKey("crm.Channel", null=True, blank=True, on_delete=models.SET_NULL, related_name="contacts")
    first_added_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]

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
    added_at = models.DateTimeField(null=True, blank=True)
    deleted_by_staff_at = models.DateTimeField(null=True, blank=True)
    deleted_by_customer_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["staff", "contact"], name="uniq_follow_staff_contact")]

    def __str__(self) -> str:
        return f"{self.staff_id} -> {self.contact_id}"

    @property
    def is_active(self) -> bool:
        return self.deleted_by_staff_at is None
