"""CRM models: red-packet pools, claims (paid through the WeCom pay API) and refunds."""

from django.conf import settings
from django.db import models

__all__ = [
    "FissionInvite", "FissionReferral", "GroupPacket", "GroupPacketPost", "RedPacketClaim", "RedPacketPool",
    "RedPacketRefund",
]

MIN_PACKET_FEN = 100  # WeCom corp red packets: 1..200 yuan without a scene_id
MAX_PACKET_FEN = 20000


class PoolManager(models.Manager):
    """Pools read without their split. `amounts` lists every packet (a Singles' Day pool holds 10^5-10^6), and
    only activation and the Redis state rebuild use it: decoding it on every other read (each claim that is not a
    first tap, each page, the reconciliation) cost ~10 ms for 100k packets. It is the base manager too, so
    `claim.pool` skips it as well. `.defer(None)` reads it; left deferred, it loads on first access as usual."""

    def get_queryset(self):
        return super().get_queryset().defer("amounts")


class RedPacketPool(models.Model):
    """A campaign's red-packet budget, split into `count` packets (lucky or fixed) precomputed at launch."""

    class Mode(models.TextChoices):
        LUCKY = "lucky", "Lucky (random amounts)"
        FIXED = "fixed", "Fixed amount"

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        ACTIVE = "active", "Active"
        REFUNDED = "refunded", "Expired and refunded"
        CANCELLED = "cancelled", "Cancelled"

    campaign = models.OneToOneField(
        "crm.Campaign", null=True, blank=True, on_delete=models.CASCADE, related_name="red_packet_pool"
    )
    act_name = models.CharField(max_length=32, default="Red packet")
    wishing = models.CharField(max_length=128, default="Thank you!")
    sender_name = models.CharField(max_length=128, default="Our brand")
    budget_fen = models.PositiveBigIntegerField()
    count = models.PositiveIntegerField()
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.LUCKY)
    min_fen = models.PositiveIntegerField(default=MIN_PACKET_FEN)
    max_fen = models.PositiveIntegerField(default=MAX_PACKET_FEN)
    # Claims open at starts_at (at activation when empty) and close at expires_at, when what is left is refunded.
    starts_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(db_index=True)
    # Who may claim: a definition in the segment filter language (crm.services.segments), e.g. a tier, a group's
    # members, or new contacts of a channel ({"all": [channel, added after]}); empty: every contact with the link.
    eligibility = models.JSONField(default=dict, blank=True)
    # A packet unlocks only after a task the CRM can verify: 0 = none; N = fission, N friends new to the brand
    # added through the customer's personal invite QR (FissionInvite), counted from the add callbacks.
    gate_friends = models.PositiveSmallIntegerField(default=0)
    # A group lucky packet (crm.services.group_packets): posted in this customer group, opened only by its present
    # members, first come first served until the `count` packets are gone. Empty for a campaign's pool.
    group = models.ForeignKey(
        "crm.CustomerGroup", null=True, blank=True, on_delete=models.PROTECT, related_name="group_packets"
    )
    # A lucky draw's red-packet prize (crm.services.draws): only the prize's winners claim, once each, at fulfilment;
    # the pool is what makes the prize's money reconcile like any other pool's. Empty for every other pool.
    draw_prize = models.OneToOneField(
        "crm.GroupDrawPrize", null=True, blank=True, on_delete=models.PROTECT, related_name="red_packet_pool"
    )
    # More gates (crm.services.gates), all of which must be passed: a mini-game played on the page (a signed,
    # server-issued session: crm.services.game_gate), purchases of at least gate_purchase_fen since the pool
    # opened (till receipts and imported orders), and an add of our staff through gate_channel's contact way.
    gate_game = models.BooleanField(default=False)
    gate_purchase_fen = models.PositiveBigIntegerField(default=0)
    gate_channel = models.ForeignKey(
        "crm.Channel", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # A claim not paid within this many hours of its claim is refunded (like WeCom's 24 h for an unopened packet):
    # crm.services.claim_expiry, from the refund beat.
    claim_expiry_hours = models.PositiveSmallIntegerField(default=24)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT, db_index=True)
    # The precomputed split (written once at activation): Redis state is rebuilt from it and the claims.
    amounts = models.JSONField(default=list, blank=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # The latest scheduled reconciliation (crm.services.redpackets.redpacket_reconcile_record): an unbalanced pool
    # turns /healthz/money red and puts a banner on every console page until a later check balances.
    reconciled_at = models.DateTimeField(null=True, blank=True)
    reconcile_balanced = models.BooleanField(null=True, blank=True, db_index=True)
    reconcile_difference_fen = models.BigIntegerField(default=0)
    # Over settings.REDPACKET_APPROVAL_THRESHOLD_FEN a pool goes live only once a second admin approved it.
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)

    objects = PoolManager()

    class Meta:
        base_manager_name = "objects"
        ordering = ["-id"]
        permissions = [("approve_redpacketpool", "Can approve a red-packet pool over the approval threshold")]
        constraints = [
            models.CheckConstraint(condition=models.Q(min_fen__gte=MIN_PACKET_FEN), name="rp_pool_min_ge_100"),
            models.CheckConstraint(condition=models.Q(max_fen__lte=MAX_PACKET_FEN), name="rp_pool_max_le_20000"),
            models.CheckConstraint(condition=models.Q(min_fen__lte=models.F("max_fen")), name="rp_pool_min_le_max"),
        ]

    def __str__(self) -> str:
        return f"pool {self.pk} ({self.budget_fen} fen / {self.count})"


class RedPacketClaim(models.Model):
    """A customer's claimed packet (one per pool and contact) and its payout, keyed by a deterministic billno."""

    class Status(models.TextChoices):
        RECEIVED = "received", "Claimed, payout queued"
        PAYING = "paying", "Paying"
        PAID = "paid", "Paid"
        FAILED = "failed", "Payout failed"
        EXPIRED = "expired", "Not paid in time, refunded"

    # No index of its own: the unique (pool, contact) leads with it (crm 0027).
    pool = models.ForeignKey(RedPacketPool, on_delete=models.PROTECT, related_name="claims", db_index=False)
    contact = models.ForeignKey("crm.Contact", on_delete=models.PROTECT, related_name="red_packet_claims")
    amount_fen = models.PositiveIntegerField()
    # mch_id + yyyymmdd + claim id (10 digits): 28 chars, derived from the claim, re-entrant at the pay API.
    billno = models.CharField(max_length=28, unique=True, null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED, db_index=True)
    openid = models.CharField(max_length=64, blank=True)
    send_listid = models.CharField(max_length=64, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=512, blank=True)
    claimed_at = models.DateTimeField(auto_now_add=True)
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["pool", "contact"], name="uniq_rp_claim_pool_contact")]

    def __str__(self) -> str:
        return f"claim {self.pk}: {self.amount_fen} fen ({self.status})"


class RedPacketRefund(models.Model):
    """What an expired pool left unclaimed, returned to the budget (one per pool)."""

    pool = models.OneToOneField(RedPacketPool, on_delete=models.PROTECT, related_name="refund")
    amount_fen = models.PositiveBigIntegerField()
    packets = models.PositiveIntegerField(default=0)
    # Of amount_fen: reserved in Redis by claims whose row was never written (their process died), as
    # {contact id: fen}, so reconciliation knows these reservations are settled whatever Redis still says.
    reserved = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"refund {self.amount_fen} fen of pool {self.pool_id}"


class FissionInvite(models.Model):
    """A customer's personal invite QR for a pool's fission gate: a WeCom contact way whose `state` names it."""

    pool = models.ForeignKey(RedPacketPool, on_delete=models.CASCADE, related_name="invites")
    inviter = models.ForeignKey("crm.Contact", on_delete=models.CASCADE, related_name="fission_invites")
    state = models.CharField(max_length=30, unique=True)
    config_id = models.CharField(max_length=64, blank=True)
    qr_code = models.URLField(max_length=512, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["pool", "inviter"], name="uniq_fission_invite_pool_inviter")]

    def __str__(self) -> str:
        return f"invite {self.state}"


class FissionReferral(models.Model):
    """A friend who added the brand through an invite: counted once per pool (UNIQUE pool, invitee)."""

    invite = models.ForeignKey(FissionInvite, on_delete=models.CASCADE, related_name="referrals")
    pool = models.ForeignKey(RedPacketPool, on_delete=models.CASCADE, related_name="referrals")
    invitee = models.ForeignKey("crm.Contact", on_delete=models.CASCADE, related_name="fission_referrals")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["pool", "invitee"], name="uniq_fission_referral_pool_invitee")]

    def __str__(self) -> str:
        return f"{self.invitee_id} via {self.invite_id}"


class GroupPacket(RedPacketPool):
    """A group lucky packet: a pool with a group (the console's own screen for them)."""

    class Meta:
        proxy = True
        verbose_name = "group lucky packet"
        verbose_name_plural = "group lucky packets"


class GroupPacketPost(models.Model):
    """The group message that carries a group packet's link: one per packet (the idempotency key), sent at most
    once (claimed SENDING and committed before WeCom is called)."""

    class Status(models.TextChoices):
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent (task created)"
        FAILED = "failed", "Failed"

    pool = models.OneToOneField(RedPacketPool, on_delete=models.PROTECT, related_name="group_post")
    sender = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SENDING)
    msgid = models.CharField(max_length=64, blank=True)
    errmsg = models.CharField(max_length=512, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "group packet post"
        verbose_name_plural = "group packet posts"

    def __str__(self) -> str:
        return f"group post of pool {self.pool_id} ({self.status})"
