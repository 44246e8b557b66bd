"""Admin: campaigns, mass messages, recipients, red-packet pools, claims and refunds."""

from __future__ import annotations

from django.contrib import admin, messages
from unfold.admin import ModelAdmin, StackedInline

from crm.errors import ApplicationError
from crm.models import (
    Campaign,
    CampaignRecipient,
    LuckyDraw,
    LuckyDrawEntry,
    MassMessage,
    RedPacketClaim,
    RedPacketPool,
    RedPacketRefund,
)
from crm.services import campaigns as campaign_services
from crm.services import redpackets as redpacket_services
from crm.services.payouts import claim_payout_retry


class RedPacketPoolInline(StackedInline):
    model = RedPacketPool
    extra = 0
    fields = ["budget_fen", "count", "mode", "min_fen", "max_fen", "expires_at", "act_name", "wishing", "status"]
    readonly_fields = ["status"]


@admin.register(Campaign)
class CampaignAdmin(ModelAdmin):
    list_display = ["id", "name", "status", "scheduled_at", "launched_at", "finished_at"]
    list_filter = ["status"]
    search_fields = ["name", "text"]
    readonly_fields = ["status", "launched_at", "finished_at", "cancelled_at", "created_at", "updated_at"]
    inlines = [RedPacketPoolInline]
    actions = ["launch_now", "cancel", "remind"]

    def _each(self, request, queryset, func, done: str) -> None:
        ok = 0
        for campaign in queryset:
            try:
                func(campaign.id)
                ok += 1
            except ApplicationError as exc:
                self.message_user(request, f"{campaign}: {exc.message}", messages.ERROR)
        if ok:
            self.message_user(request, f"{ok} campaign(s) {done}.", messages.SUCCESS)

    @admin.action(description="Launch now")
    def launch_now(self, request, queryset):
        self._each(request, queryset, campaign_services.campaign_launch, "launched")

    @admin.action(description="Cancel")
    def cancel(self, request, queryset):
        self._each(request, queryset, campaign_services.campaign_cancel, "cancelled")

    @admin.action(description="Remind senders who have not confirmed")
    def remind(self, request, queryset):
        self._each(request, queryset, campaign_services.campaign_remind, "reminded")


@admin.register(MassMessage)
class MassMessageAdmin(ModelAdmin):
    list_display = ["id", "campaign", "sender", "batch_no", "status", "msgid", "attempts", "created_task_at"]
    list_filter = ["status"]
    search_fields = ["idempotency_key", "msgid", "sender__userid"]
    raw_id_fields = ["campaign", "sender"]
    readonly_fields = [f.name for f in MassMessage._meta.fields]


@admin.register(CampaignRecipient)
class CampaignRecipientAdmin(ModelAdmin):
    list_display = ["id", "campaign", "contact", "sender", "status", "sent_at"]
    list_filter = ["status"]
    search_fields = ["external_userid", "contact__name"]
    raw_id_fields = ["campaign", "contact", "sender", "mass_message"]


@admin.register(RedPacketPool)
class RedPacketPoolAdmin(ModelAdmin):
    list_display = ["id", "campaign", "budget_fen", "count", "mode", "status", "expires_at"]
    list_filter = ["status", "mode"]
    search_fields = ["campaign__name", "act_name"]
    readonly_fields = ["amounts", "activated_at", "status"]
    actions = ["refund_expired", "rebuild_redis_state"]

    @admin.action(description="Refund if expired")
    def refund_expired(self, request, queryset):
        for pool in queryset:
            try:
                refund = redpacket_services.redpacket_refund_expired(pool.id)
                amount = refund.amount_fen if refund else 0
                self.message_user(request, f"Pool {pool.id}: refunded {amount} fen.", messages.SUCCESS)
            except ApplicationError as exc:
                self.message_user(request, f"Pool {pool.id}: {exc.message}", messages.ERROR)

    @admin.action(description="Rebuild Redis state from the database")
    def rebuild_redis_state(self, request, queryset):
        for pool in queryset:
            redpacket_services.redpacket_state_ensure(pool.id, force=True)
        self.message_user(request, "Rebuilt.", messages.SUCCESS)


@admin.register(RedPacketClaim)
class RedPacketClaimAdmin(ModelAdmin):
    list_display = ["id", "pool", "contact", "amount_fen", "status", "billno", "claimed_at", "paid_at"]
    list_filter = ["status"]
    search_fields = ["billno", "contact__external_userid", "send_listid"]
    raw_id_fields = ["pool", "contact"]
    readonly_fields = ["billno", "amount_fen", "send_listid", "openid", "attempts", "claimed_at", "paid_at"]
    actions = ["retry_payout"]

    @admin.action(description="Retry payout (same billno)")
    def retry_payout(self, request, queryset):
        ids = list(queryset.exclude(status=RedPacketClaim.Status.PAID).values_list("id", flat=True))
        queued = sum(1 for claim_id in ids if claim_payout_retry(claim_id))
        self.message_user(request, f"{queued} payout(s) queued.", messages.SUCCESS)


@admin.register(RedPacketRefund)
class RedPacketRefundAdmin(ModelAdmin):
    list_display = ["id", "pool", "amount_fen", "packets", "created_at"]
    search_fields = ["pool__campaign__name", "pool__act_name"]


@admin.register(LuckyDraw)
class LuckyDrawAdmin(ModelAdmin):
    list_display = ["id", "campaign", "win_rate_percent", "created_at"]
    search_fields = ["campaign__name"]


@admin.register(LuckyDrawEntry)
class LuckyDrawEntryAdmin(ModelAdmin):
    list_display = ["id", "draw", "contact", "prize", "created_at"]
    search_fields = ["prize", "contact__external_userid", "contact__name", "draw__campaign__name"]
    raw_id_fields = ["draw", "contact"]
