"""Admin: campaigns, mass messages, recipients, red-packet pools, claims and refunds."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from unfold.admin import ModelAdmin, StackedInline

from crm.admin.base import ServiceModelAdmin, add_service_error, adopt, console_page_action
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
from crm.services import campaign_runs, run_control
from crm.services import campaigns as campaign_services
from crm.services import redpackets as redpacket_services
from crm.services.payouts import claim_payout_retry

POOL_FIELDS = ["budget_fen", "count", "mode", "min_fen", "max_fen", "expires_at", "act_name", "wishing"]
CAMPAIGN_FIELDS = ["name", "text", "segment", "link_title", "link_url", "link_desc", "scheduled_at"]


class RedPacketPoolForm(forms.ModelForm):
    """Budget, count and bounds checked by the red-packet service, with its messages (no constraint names)."""

    class Meta:
        model = RedPacketPool
        fields = POOL_FIELDS

    def clean(self):
        data = super().clean()
        if self.errors or not all(name in self.fields for name in ("budget_fen", "count", "mode", "expires_at")):
            return data
        try:
            data["min_fen"], data["max_fen"] = redpacket_services.redpacket_pool_validate(
                budget_fen=data["budget_fen"], count=data["count"], mode=data["mode"], min_fen=data.get("min_fen"),
                max_fen=data.get("max_fen"), expires_at=data["expires_at"],
            )
        except ApplicationError as exc:
            add_service_error(self, exc)
        return data

    def validate_constraints(self):
        """The service checked what the table's constraints hold, and said it in words."""


def _pool_locked(pool: RedPacketPool | None) -> bool:
    return pool is not None and pool.pk is not None and pool.status != RedPacketPool.Status.DRAFT


class RedPacketPoolInline(StackedInline):
    model = RedPacketPool
    form = RedPacketPoolForm
    extra = 0
    max_num = 1
    can_delete = False
    fields = [*POOL_FIELDS, "status"]
    readonly_fields = ["status"]

    def get_readonly_fields(self, request, obj=None):
        pool = getattr(obj, "red_packet_pool", None) if obj is not None else None
        if _pool_locked(pool) or (obj is not None and obj.status not in campaign_services.EDITABLE):
            return [*POOL_FIELDS, "status"]  # what Redis and the claims hold: budget = paid + pending + refunded + ...
        return self.readonly_fields

    def has_add_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.status not in campaign_services.EDITABLE:
            return False
        return super().has_add_permission(request, obj)


class CampaignForm(forms.ModelForm):
    class Meta:
        model = Campaign
        fields = CAMPAIGN_FIELDS

    def clean(self):
        data = super().clean()
        if self.errors or "text" not in self.fields:  # a running or finished campaign shows its content read-only
            return data
        instance = self.instance
        try:
            data["text"], data["segment"] = campaign_services.campaign_validate(
                name=data.get("name", ""), text=data.get("text", ""), segment=data.get("segment"),
                link_title=data.get("link_title", ""), link_url=data.get("link_url", ""),
                scheduled_at=data.get("scheduled_at"),
                with_red_packet=instance.pk is not None and RedPacketPool.objects.filter(campaign=instance).exists(),
            )
        except ApplicationError as exc:
            add_service_error(self, exc)
        return data


@admin.register(Campaign)
class CampaignAdmin(ServiceModelAdmin):
    """Created, edited, scheduled, launched, cancelled and deleted only through crm.services.campaigns: a campaign
    saved with a scheduled_at is scheduled (beat launches it), and what a running or finished one sent stays as sent
    (crash recovery matches the text)."""

    form = CampaignForm
    list_display = ["id", "name", "status", "scheduled_at", "launched_at", "finished_at"]
    list_filter = ["status"]
    search_fields = ["name", "text"]
    readonly_fields = ["status", "launched_at", "finished_at", "cancelled_at", "created_at", "updated_at"]
    inlines = [RedPacketPoolInline]
    actions = ["launch_now", "cancel", "remind"]
    actions_detail = ["open_campaign_page"]
    actions_row = ["open_campaign_page"]

    open_campaign_page = console_page_action("campaign-detail", _("Campaign page (live progress)"),
                                             icon="monitoring")

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.status not in campaign_services.EDITABLE:
            return [*CAMPAIGN_FIELDS, *self.readonly_fields]
        return self.readonly_fields

    def save_model(self, request, obj, form, change) -> None:
        data = form.cleaned_data
        if not change:
            created = campaign_services.campaign_create(**{name: data.get(name) or "" for name in (
                "name", "text", "link_title", "link_url", "link_desc")}, segment=data.get("segment") or {},
                scheduled_at=data.get("scheduled_at"))
            adopt(obj, created)
            return
        changed = {name: data[name] for name in form.changed_data if name in CAMPAIGN_FIELDS}
        if changed:
            adopt(obj, campaign_services.campaign_update(obj.pk, **changed))

    def save_formset(self, request, form, formset, change) -> None:
        if formset.model is not RedPacketPool:
            return super().save_formset(request, form, formset, change)
        campaign = form.instance
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for pool_form in formset.forms:
            if not pool_form.has_changed() or not pool_form.cleaned_data:
                continue
            fields = {name: pool_form.cleaned_data[name] for name in POOL_FIELDS if name in pool_form.cleaned_data}
            if campaign.scheduled_at and fields.get("expires_at") and fields["expires_at"] <= campaign.scheduled_at:
                raise ApplicationError(_("The red packets must expire after the campaign is sent."),
                                       field="expires_at")
            if pool_form.instance.pk is None:
                pool = redpacket_services.redpacket_pool_create(campaign_id=campaign.pk, **fields)
                formset.new_objects.append(pool)
            else:
                pool = redpacket_services.redpacket_pool_update(pool_form.instance.pk, **fields)
                formset.changed_objects.append((pool, pool_form.changed_data))

    def delete_model(self, request, obj) -> None:
        campaign_services.campaign_delete(obj.pk)

    def delete_queryset(self, request, queryset) -> None:
        for campaign in queryset:
            campaign_services.campaign_delete(campaign.pk)

    def _each(self, request, queryset, func, done: str) -> None:
        ok = 0
        for campaign in queryset:
            try:
                func(campaign.id)
                ok += 1
            except ApplicationError as exc:
                self.message_user(request, f"{campaign}: {exc.message}", messages.ERROR)
        if ok:
            self.message_user(request, _("%(n)d campaign(s) %(done)s.") % {"n": ok, "done": done}, messages.SUCCESS)

    @admin.action(description=_("Launch now"))
    def launch_now(self, request, queryset):
        self._each(request, queryset, campaign_runs.campaign_launch, _("launched"))

    @admin.action(description=_("Cancel"))
    def cancel(self, request, queryset):
        self._each(request, queryset, run_control.campaign_cancel, _("cancelled"))

    @admin.action(description=_("Remind senders who have not confirmed"))
    def remind(self, request, queryset):
        self._each(request, queryset, run_control.campaign_remind, _("reminded"))


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
class RedPacketPoolAdmin(ServiceModelAdmin):
    """Pools are made with their campaign; a draft one is edited through the service, an active one never."""

    form = RedPacketPoolForm
    list_display = ["id", "campaign", "budget_fen", "count", "mode", "status", "expires_at"]
    list_filter = ["status", "mode"]
    search_fields = ["campaign__name", "act_name"]
    readonly_fields = ["campaign", "amounts", "activated_at", "status"]
    actions = ["refund_expired", "rebuild_redis_state"]
    actions_detail = ["open_pool_page"]
    actions_row = ["open_pool_page"]

    open_pool_page = console_page_action("pool", _("Pool page (reconciliation)"), icon="account_balance")

    def get_readonly_fields(self, request, obj=None):
        if _pool_locked(obj):
            return [*POOL_FIELDS, *self.readonly_fields]
        return self.readonly_fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        fields = {name: form.cleaned_data[name] for name in form.changed_data if name in POOL_FIELDS}
        if fields:
            adopt(obj, redpacket_services.redpacket_pool_update(obj.pk, **fields))

    @admin.action(description=_("Refund if expired"))
    def refund_expired(self, request, queryset):
        for pool in queryset:
            try:
                refund = redpacket_services.redpacket_refund_expired(pool.id)
                amount = refund.amount_fen if refund else 0
                message = _("Pool %(id)s: refunded %(amount)s fen.") % {"id": pool.id, "amount": amount}
                self.message_user(request, message, messages.SUCCESS)
            except ApplicationError as exc:
                self.message_user(request, _("Pool %(id)s: %(error)s") % {"id": pool.id, "error": exc.message},
                                  messages.ERROR)

    @admin.action(description=_("Rebuild Redis state from the database"))
    def rebuild_redis_state(self, request, queryset):
        for pool in queryset:
            redpacket_services.redpacket_state_ensure(pool.id, force=True)
        self.message_user(request, _("Rebuilt."), messages.SUCCESS)


@admin.register(RedPacketClaim)
class RedPacketClaimAdmin(ModelAdmin):
    list_display = ["id", "pool", "contact", "amount_fen", "status", "billno", "claimed_at", "paid_at"]
    list_filter = ["status"]
    search_fields = ["billno", "contact__external_userid", "send_listid"]
    raw_id_fields = ["pool", "contact"]
    readonly_fields = ["billno", "amount_fen", "send_listid", "openid", "attempts", "claimed_at", "paid_at"]
    actions = ["retry_payout"]

    @admin.action(description=_("Retry payout (same billno)"))
    def retry_payout(self, request, queryset):
        ids = list(queryset.exclude(status=RedPacketClaim.Status.PAID).values_list("id", flat=True))
        queued = sum(1 for claim_id in ids if claim_payout_retry(claim_id))
        self.message_user(request, ngettext("%(n)d payout queued.", "%(n)d payouts queued.", queued) % {"n": queued},
                          messages.SUCCESS)


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
