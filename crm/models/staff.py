"""Staff: WeCom members who can own customer relationships."""

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
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["userid"]
        verbose_name_plural = "staff"

    def __str__(self) -> str:
        return f"{self.name or self.userid} ({self.userid})"
