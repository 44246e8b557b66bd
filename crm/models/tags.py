"""Corp customer tags (synced both ways with WeCom corp tags) and their assignment to contacts."""

from django.db import models


class TagGroup(models.Model):
    """A WeCom corp tag group (`et...` group_id)."""

    wecom_id = models.CharField(max_length=64, unique=True, null=True, blank=True)
    name = models.CharField(max_length=64)
    order = models.BigIntegerField(default=0)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-order", "name"]

    def __str__(self) -> str:
        return self.name


class Tag(models.Model):
    """A WeCom corp tag (`et...` tag id) inside a group."""

    group = models.ForeignKey(TagGroup, on_delete=models.CASCADE, related_name="tags")
    wecom_id = models.CharField(max_length=64, unique=True, null=True, blank=True)
    name = models.CharField(max_length=64)
    order = models.BigIntegerField(default=0)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-order", "name"]
        constraints = [models.UniqueConstraint(fields=["group", "name"], name="uniq_tag_name_in_group")]

    def __str__(self) -> str:
        return f"{self.group.name}/{self.name}"


class ContactTag(models.Model):
    """A tag on a contact (company view: the contact carries it if any follow relation does)."""

    contact = models.ForeignKey("crm.Contact", on_delete=models.CASCADE, related_name="contact_tags")
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="contact_tags")
    staff = models.ForeignKey("crm.Staff", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["contact", "tag"], name="uniq_contact_tag")]
        # Segments ask "which contacts carry tag X": an index-only scan by tag (the unique one leads by contact).
        indexes = [models.Index(fields=["tag", "contact"], name="contacttag_tag_contact")]

    def __str__(self) -> str:
        return f"{self.contact_id} #{self.tag_id}"
