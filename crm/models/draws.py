"""Provably fair lucky draws in WeCom customer groups: commit (sha256 of a secret seed) before entries close, reveal
after, winners a public function of the seed and the sorted entries (docs/lucky-draws.md)."""

from django.conf import settings
from django.db import models

__all__ = ["GroupDraw", "GroupDrawAnnouncement", "GroupDrawEntry", "GroupDrawPrize", "GroupDrawWinner"]


class GroupDraw(models.Model):
    """A lucky draw for the members of one or more customer groups."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        OPEN = "open", "Open"  # seed committed, commitment announced
        CLOSED = "closed", "Closed"  # no more entries; seed still secret
        REVEALED = "revealed", "Revealed"  # seed published, winners drawn

    name = models.CharField(max_length=128)
    groups = models.ManyToManyField("crm.CustomerGroup", related_name="draws")
    opens_at = models.DateTimeField()
    closes_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT, db_index=True)
    # The seed is secret until revealed: never shown, exported or announced before status == revealed.
    seed_hex = models.CharField(max_length=64, blank=True)
    commitment = models.CharField(max_length=64, blank=True, help_text="sha256(seed) in hex, published at opening.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    revealed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.CheckConstraint(condition=models.Q(closes_at__gt=models.F("opens_at")),
                                              name="group_draw_closes_after_opens")]

    def __str__(self) -> str:
        return self.name


class GroupDrawPrize(models.Model):
    """One prize of a draw and how many winners get it; prizes are drawn in `position` order."""

    class Kind(models.TextChoices):
        COUPON = "coupon", "Coupon"
        POINTS = "points", "Points"
        RED_PACKET = "red_packet", "Red packet"

    draw = models.ForeignKey(GroupDraw, on_delete=models.CASCADE, related_name="prizes")
    position = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # crm does not import loyalty: the coupon is loyalty's Reward id, granted through a registered hook.
    reward_id = models.PositiveBigIntegerField(null=True, blank=True)
    points = models.PositiveIntegerField(null=True, blank=True)
    amount_fen = models.PositiveIntegerField(null=True, blank=True)
    winners = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["draw", "position"]
        constraints = [models.UniqueConstraint(fields=["draw", "position"], name="uniq_group_draw_prize_position")]

    def __str__(self) -> str:
        return f"{self.kind} x{self.winners}"


class GroupDrawEntry(models.Model):
    """A member's entry: at most one per (draw, contact); external_userid is the public id the winners sort by."""

    draw = models.ForeignKey(GroupDraw, on_delete=models.CASCADE, related_name="entries")
    contact = models.ForeignKey("crm.Contact", on_delete=models.PROTECT, related_name="draw_entries")
    external_userid = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "group draw entries"
        ordering = ["draw", "external_userid"]
        constraints = [
            models.UniqueConstraint(fields=["draw", "contact"], name="uniq_group_draw_entry_contact"),
            models.UniqueConstraint(fields=["draw", "external_userid"], name="uniq_group_draw_entry_userid"),
        ]

    def __str__(self) -> str:
        return f"{self.external_userid} in draw {self.draw_id}"


class GroupDrawWinner(models.Model):
    """A winning entry and the fulfilment of its prize; one per (draw, entry), its idempotency key unique."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        FULFILLED = "fulfilled", "Fulfilled"
        FAILED = "failed", "Failed"

    draw = models.ForeignKey(GroupDraw, on_delete=models.CASCADE, related_name="winners")
    entry = models.ForeignKey(GroupDrawEntry, on_delete=models.PROTECT, related_name="+")
    prize = models.ForeignKey(GroupDrawPrize, on_delete=models.PROTECT, related_name="+")
    rank = models.PositiveIntegerField(help_text="Draw order i of the winner function.")
    idempotency_key = models.CharField(max_length=64, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    reason = models.CharField(max_length=64, blank=True)
    fulfilled_ref = models.CharField(max_length=64, blank=True, help_text="Coupon code or ledger id.")
    fulfilled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["draw", "rank"]
        constraints = [
            models.UniqueConstraint(fields=["draw", "entry"], name="uniq_group_draw_winner_entry"),
            models.UniqueConstraint(fields=["draw", "rank"], name="uniq_group_draw_winner_rank"),
        ]

    def __str__(self) -> str:
        return f"winner {self.rank} of draw {self.draw_id}"


class GroupDrawAnnouncement(models.Model):
    """A group message about a draw (the commitment, the winners), sent at most once per (draw, kind)."""

    class Kind(models.TextChoices):
        COMMITMENT = "commitment", "Commitment"
        WINNERS = "winners", "Winners"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"  # claimed by one task before the call; only it sends
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    draw = models.ForeignKey(GroupDraw, on_delete=models.CASCADE, related_name="announcements")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    idempotency_key = models.CharField(max_length=64, unique=True)
    text = models.TextField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    msgid = models.CharField(max_length=64, blank=True)
    last_error = models.CharField(max_length=512, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["draw", "kind"], name="uniq_group_draw_announcement")]

    def __str__(self) -> str:
        return self.idempotency_key
