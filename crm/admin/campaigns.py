"""Admin: campaigns, mass messages, recipients, red-packet pools, claims and refunds."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from unfold.admin import ModelAdmin, StackedInline
from unfold.widgets import UnfoldAdminRadioSelectWidget, UnfoldAdminSelect2MultipleWidget, UnfoldAdminSelectWidget

from crm.admin.base import ServiceModelAdmin, add_service_error, adopt, console_page_action
from crm.admin.pool_filters import PoolApprovalFilter
from crm.errors import ApplicationError
from crm.models import (
    Campaign,
    CampaignRecipient,
    Channel,
    FissionInvite,
    FissionReferral,
    GameSession,
    LuckyDraw,
    LuckyDrawEntry,
    MassMessage,
    RedPacketClaim,
    RedPacketPool,
    RedPacketRefund,
    Segment,
)
from crm.services import campaign_runs, run_control
from crm.services import campaigns as campaign_services
from crm.services import redpackets as redpacket_services
from crm.services.claim_expiry import clean_claim_expiry
from crm.services.gates import clean_gates
from crm.services.payouts import claim_payout_retry

POOL_FIELDS = ["budget_fen", "count", "mode", "min_fen", "max_fen", "starts_at", "expires_at", "act_name", "wishing",
               "gate_friends", "gate_game", "gate_purchase_fen", "gate_channel", "claim_expiry_hours",
               "eligibility"]  # fmt: skip


class RedPacketPoolForm(forms.ModelForm):
    """Budget, count and bounds checked by the red-packet service, with its messages (no constraint names).
    Who may claim is a saved segment (the filter language's `segment` condition), chosen from the list."""

    gate_friends = forms.IntegerField(
        required=False, min_value=0, max_value=50, label=_("Friends to invite"),
        help_text=_("Fission: friends new to the brand each customer must bring through their invite QR (0: none)."),
    )  # fmt: skip
    # Optional in the form (a pool posted without it keeps the model's 24 h), checked by the service when given.
    claim_expiry_hours = forms.IntegerField(required=False, min_value=1, initial=24, label=_("claim expiry hours"))
    gate_game = forms.BooleanField(
        required=False, label=_("Mini-game"),
        help_text=_("The customer plays a short game on the red packet's page first (a signed, checked result)."),
    )  # fmt: skip
    gate_purchase_fen = forms.IntegerField(
        required=False, min_value=0, label=_("Purchase of at least (fen)"),
        help_text=_("Till receipts and imported orders since the pool opened (0: none)."),
    )  # fmt: skip
    gate_channel = forms.ModelChoiceField(
        queryset=Channel.objects.order_by("name"), required=False, label=_("Add our staff via"),
        help_text=_("The customer must have added a staff member through this channel's contact way."),
    )  # fmt: skip
    eligible_segment = forms.ModelChoiceField(
        queryset=Segment.objects.order_by("name"), required=False, label=_("Who may claim"),
        help_text=_("A saved segment (a tier, a group's members, new contacts of a channel...). Empty: everyone "
                    "the link reaches."),
    )  # fmt: skip

    class Meta:
        model = RedPacketPool
        fields = [name for name in POOL_FIELDS if name != "eligibility"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        current = (self.instance.eligibility or {}) if self.instance and self.instance.pk else {}
        if current.get("field") == "segment" and current.get("value"):
            self.initial["eligible_segment"] = current["value"][0]

    def clean(self):
        data = super().clean()
        segment = data.pop("eligible_segment", None)
        data["eligibility"] = {"field": "segment", "op": "in", "value": [segment.pk]} if segment else {}
        data["gate_friends"] = data.get("gate_friends") or 0
        data["gate_purchase_fen"] = data.get("gate_purchase_fen") or 0
        data["gate_game"] = bool(data.get("gate_game"))
        try:  # the service's checks, said on the field at fault
            clean_gates(gate_game=data["gate_game"], gate_purchase_fen=data["gate_purchase_fen"],
                        gate_channel=data.get("gate_channel"))  # fmt: skip
            if "claim_expiry_hours" in self.fields:
                data["claim_expiry_hours"] = data.get("claim_expiry_hours") or 24
                clean_claim_expiry(data["claim_expiry_hours"])
        except ApplicationError as exc:
            add_service_error(self, exc)
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


# The compose form lives here, in the admin's add/change form (as a channel's does): Save opens the campaign's
# console page, where its runs, progress and controls are. The preview panel under the fields is rendered by
# crm.console.campaign from campaign_preview() and re-rendered as the form changes (console/campaign_compose.js).
ATTACHMENT_CHOICES = [
    ("", _("Text only")), ("image", _("Image")), ("link", _("Link")), ("miniprogram", _("Mini program")),
]
TARGET_CHOICES = [
    ("segment", _("Customers in a segment")), ("groups", _("Chosen customer groups")),
    ("vip_groups", _("All VIP groups")),
]
SEGMENT_SOURCE_CHOICES = [("saved", _("A saved segment")), ("inline", _("A definition written here (JSON)"))]
RECURRENCE_CHOICES = [("once", _("Once")), ("weekly", _("Every week")), ("monthly", _("Every month"))]
WEEKDAY_CHOICES = [("", "—")] + [(str(i), name) for i, name in enumerate([
    _("Monday"), _("Tuesday"), _("Wednesday"), _("Thursday"), _("Friday"), _("Saturday"), _("Sunday")])]
DAY_CHOICES = [("", "—")] + [(str(d), str(d)) for d in range(1, 32)]
CAMPAIGN_FIELDS = [
    "name", "text", "attachment", "link_title", "link_url", "link_desc", "image", "miniprogram_appid",
    "miniprogram_page", "miniprogram_title", "target", "saved_segment", "segment", "group_chat_ids",
    "recurrence", "scheduled_at", "recur_weekday", "recur_day", "recur_time", "recur_until",
]
FORM_ONLY_FIELDS = ["segment_source"]
# A service's field name -> the form field that shows its refusal.
SERVICE_FIELD_MAP = {"saved_segment_id": "saved_segment", "segment_id": "saved_segment", "red_packet": None}
ATTACHMENT_FIELDS = {
    "link": ("link_title", "link_url", "link_desc"),
    "image": ("image",),
    "miniprogram": ("miniprogram_appid", "miniprogram_page", "miniprogram_title"),
}
CONDITIONAL_FIELDS = {
    **{name: f"attachment == '{kind}'" for kind, names in ATTACHMENT_FIELDS.items() for name in names},
    "image": "attachment == 'image' || attachment == 'miniprogram'",  # a mini program's cover is the image too
    "segment_source": "target == 'segment'",
    "saved_segment": "target == 'segment' && segment_source == 'saved'",
    "segment": "target == 'segment' && segment_source == 'inline'",
    "group_chat_ids": "target == 'groups'",
    "scheduled_at": "recurrence == 'once'",
    "recur_weekday": "recurrence == 'weekly'",
    "recur_day": "recurrence == 'monthly'",
    "recur_time": "recurrence == 'weekly' || recurrence == 'monthly'",
    "recur_until": "recurrence == 'weekly' || recurrence == 'monthly'",
}


def group_label(group) -> str:
    owner = group.owner.name if group.owner_id and group.owner.name else (group.owner.userid if group.owner_id
                                                                            else "—")
    members = getattr(group, "member_count", None)
    return _("%(name)s · %(owner)s · %(n)s members") % {"name": group, "owner": owner, "n": members}


def segment_label(segment) -> str:
    if segment.last_count is None:
        return _("%(name)s (not counted yet)") % {"name": segment.name}
    return _("%(name)s (%(n)s customers at last count)") % {"name": segment.name, "n": f"{segment.last_count:,}"}


class CampaignForm(forms.ModelForm):
    """What to send, to whom and when. Every check is the campaign service's own (campaign_validate), shown at the
    field it names; the fields of choices not taken (another attachment, another target) are not sent to it."""

    attachment = forms.ChoiceField(label=_("Attachment"), choices=ATTACHMENT_CHOICES, required=False,
                                   widget=UnfoldAdminRadioSelectWidget)
    target = forms.ChoiceField(label=_("Send to"), choices=TARGET_CHOICES, required=False,
                               widget=UnfoldAdminRadioSelectWidget)
    segment_source = forms.ChoiceField(
        label=_("Segment"), choices=SEGMENT_SOURCE_CHOICES, required=False, widget=UnfoldAdminRadioSelectWidget,
        help_text=_("The segment builder (Contacts › Segments) makes saved segments; an inline definition uses the "
                    "same filter language."))
    group_chat_ids = forms.MultipleChoiceField(
        label=_("Customer groups"), required=False, widget=UnfoldAdminSelect2MultipleWidget,
        help_text=_("Active groups: name · owner · members. Each group's owner sends it."))
    recurrence = forms.ChoiceField(label=_("Repeat"), choices=RECURRENCE_CHOICES, required=False,
                                   widget=UnfoldAdminRadioSelectWidget)
    recur_weekday = forms.TypedChoiceField(label=_("Weekday"), choices=WEEKDAY_CHOICES, required=False, coerce=int,
                                           empty_value=None, widget=UnfoldAdminSelectWidget)
    recur_day = forms.TypedChoiceField(label=_("Day of the month"), choices=DAY_CHOICES, required=False, coerce=int,
                                       empty_value=None, widget=UnfoldAdminSelectWidget,
                                       help_text=_("In a shorter month: its last day."))

    class Meta:
        model = Campaign
        fields = CAMPAIGN_FIELDS
        labels = {
            "name": _("Name"), "text": _("Text"), "link_title": _("Link title"), "link_url": _("Link URL"),
            "link_desc": _("Link description"), "image": _("Image"), "miniprogram_appid": _("Mini program AppID"),
            "miniprogram_page": _("Mini program page"), "miniprogram_title": _("Mini program title"),
            "saved_segment": _("Saved segment"), "segment": _("Segment definition"),
            "recur_time": _("At (Asia/Shanghai)"),
            "recur_until": _("Until (Asia/Shanghai)"),
        }
        help_texts = {"scheduled_at": _("Asia/Shanghai. Empty: a draft, sent when you press Send now."),
                      "recur_until": _("Empty: no end.")}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from crm.selectors.campaign_compose import compose_groups, compose_segments

        if "group_chat_ids" in self.fields:
            self.fields["group_chat_ids"].choices = [(g.chat_id, group_label(g)) for g in compose_groups()]
        if "saved_segment" in self.fields:
            field = self.fields["saved_segment"]
            field.queryset = compose_segments()
            field.label_from_instance = segment_label
        if "image" in self.fields:
            self.fields["image"].widget.attrs["accept"] = "image/jpeg,image/png"
        instance = self.instance
        if instance.pk and not self.is_bound:
            self.initial.setdefault("segment_source", "saved" if instance.saved_segment_id else "inline")
        for name, value in (("target", "segment"), ("recurrence", "once"), ("segment_source", "saved")):
            if name in self.fields:
                self.initial.setdefault(name, getattr(instance, name, None) or value)

    def _choice(self, data: dict, name: str, default: str) -> str:
        """A choice not posted (an older form, the API-like tests) is inferred, so the old fields keep working."""
        if self.data.get(name) is None:
            return default
        return data.get(name) or default

    def service_fields(self, data: dict) -> dict:
        """The campaign service's keywords for what the form says: only the chosen target's, attachment's and
        schedule's fields (the others are blank or None, so a hidden field never sends anything)."""
        attachment = self._choice(data, "attachment", "link" if data.get("link_url") or data.get("link_title")
                                  else "")
        target = self._choice(data, "target", "segment")
        source = self._choice(data, "segment_source", "saved" if data.get("saved_segment") else "inline")
        recurrence = self._choice(data, "recurrence", "once")
        fields: dict = {"name": data.get("name") or "", "text": data.get("text") or "", "target": target,
                        "attachment": attachment, "recurrence": recurrence}
        for kind, names in ATTACHMENT_FIELDS.items():
            for name in names:
                if name != "image":
                    fields[name] = (data.get(name) or "") if kind == attachment else ""
        image = self.files.get("image") if attachment in ("image", "miniprogram") else None
        if image is not None:
            fields["image"] = image
        saved = data.get("saved_segment")
        fields["saved_segment_id"] = saved.pk if saved is not None and target == "segment" and source == "saved" \
            else None
        fields["segment"] = (data.get("segment") or {}) if target == "segment" and source == "inline" else {}
        fields["group_chat_ids"] = list(data.get("group_chat_ids") or []) if target == "groups" else []
        once = recurrence == "once"
        fields["scheduled_at"] = data.get("scheduled_at") if once else None
        fields["recur_weekday"] = data.get("recur_weekday") if recurrence == "weekly" else None
        fields["recur_day"] = data.get("recur_day") if recurrence == "monthly" else None
        fields["recur_time"] = None if once else data.get("recur_time")
        fields["recur_until"] = None if once else data.get("recur_until")
        return fields

    def clean(self):
        data = super().clean()
        if self.errors or "text" not in self.fields:  # a running or finished campaign shows its content read-only
            return data
        fields = self.service_fields(data)
        self.service_kwargs = fields
        if fields["target"] == "segment" and self._choice(data, "segment_source", "") == "saved" \
                and not fields["saved_segment_id"]:
            self.add_error("saved_segment", _("Choose a saved segment, or write a definition here."))
            return data
        instance = self.instance
        try:
            # The service's own checks, writing nothing (the stored image and red packet of the campaign edited).
            campaign_services.campaign_validate(**fields, campaign_id=instance.pk)
        except ApplicationError as exc:
            add_service_error(self, exc, SERVICE_FIELD_MAP)
        return data


def _current(campaign: Campaign, name: str):
    return getattr(campaign, "saved_segment_id" if name == "saved_segment_id" else name)


@admin.register(Campaign)
class CampaignAdmin(ServiceModelAdmin):
    """Created, edited, scheduled, launched, cancelled and deleted only through the campaign services: a campaign
    saved with a schedule is scheduled (beat runs each occurrence), and what a running or finished one sent stays
    as sent (crash recovery matches the text). Save opens the campaign's console page."""

    form = CampaignForm
    list_display = ["id", "name", "target", "recurrence", "status", "scheduled_at", "launched_at", "finished_at"]
    list_filter = ["status", "target", "recurrence"]
    search_fields = ["name", "text"]
    readonly_fields = ["status", "launched_at", "finished_at", "cancelled_at", "created_at", "updated_at"]
    inlines = [RedPacketPoolInline]
    actions = ["launch_now", "cancel", "remind"]
    actions_detail = ["open_campaign_page"]
    actions_row = ["open_campaign_page"]
    conditional_fields = CONDITIONAL_FIELDS
    change_form_after_template = "console/campaign_compose_preview.html"

    open_campaign_page = console_page_action("campaign-detail", _("Campaign page (live progress)"),
                                             icon="monitoring")

    def get_fieldsets(self, request, obj=None):
        editable = obj is None or obj.status in campaign_services.EDITABLE
        audience = ["target", *(["segment_source"] if editable else []), "saved_segment", "segment",
                    "group_chat_ids"]
        return [
            (_("Message"), {"fields": ["name", "text", "attachment", "link_title", "link_url", "link_desc", "image",
                                       "miniprogram_appid", "miniprogram_page", "miniprogram_title"]}),
            (_("Audience"), {"fields": audience}),
            (_("Schedule (Asia/Shanghai)"), {"fields": ["recurrence", "scheduled_at", "recur_weekday", "recur_day",
                                                       "recur_time", "recur_until"]}),
            (_("Status"), {"fields": self.readonly_fields, "classes": ["collapse"] if obj is None else []}),
        ]

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.status not in campaign_services.EDITABLE:
            return [*CAMPAIGN_FIELDS, *self.readonly_fields]
        return self.readonly_fields

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        from crm.console.campaign import compose_preview_context

        context["compose_preview"] = compose_preview_context(obj) if obj is not None and obj.pk else None
        return super().render_change_form(request, context, add, change, form_url, obj)

    def save_model(self, request, obj, form, change) -> None:
        fields = dict(getattr(form, "service_kwargs", {}))
        if not change:
            adopt(obj, campaign_services.campaign_create(**fields))
            return
        # Only what changed: the service refuses to change what a scheduled run already holds.
        current = Campaign.objects.get(pk=obj.pk)
        changed = {name: value for name, value in fields.items() if name == "image" or _current(current, name) != value}
        if changed:
            adopt(obj, campaign_services.campaign_update(obj.pk, **changed))

    def _to_page(self, request, obj, fallback):
        if any(key in request.POST for key in ("_continue", "_addanother", "_popup", "_saveasnew")):
            return fallback()
        return HttpResponseRedirect(reverse("console:campaign-detail", args=[obj.pk]))

    def response_add(self, request, obj, post_url_continue=None):
        """Save opens the campaign page: its schedule's next occurrences, its runs, Send now."""
        return self._to_page(request, obj, lambda: super(CampaignAdmin, self).response_add(request, obj,
                                                                                             post_url_continue))

    def response_change(self, request, obj):
        return self._to_page(request, obj, lambda: super(CampaignAdmin, self).response_change(request, obj))

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
                pool = redpacket_services.redpacket_pool_create(campaign_id=campaign.pk, created_by=request.user,
                                                                **fields)  # fmt: skip
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
    list_display = ["id", "campaign", "budget_fen", "count", "mode", "status", "approval", "expires_at"]
    list_filter = [PoolApprovalFilter, "status", "mode"]
    search_fields = ["campaign__name", "act_name"]
    readonly_fields = ["campaign", "split", "activated_at", "status", "created_by", "approved_by", "approved_at"]
    actions = ["approve", "refund_expired", "rebuild_redis_state"]

    @admin.display(description=_("Packet amounts"))
    def split(self, obj: RedPacketPool) -> str:
        # A summary, not the list: a Singles' Day pool's split is 10^5-10^6 amounts.
        amounts = obj.amounts if obj.pk else []
        if not amounts:
            return _("Made at activation")
        return _("%(count)s packets of %(low)s to %(high)s fen, %(total)s fen in all; the first: %(first)s") % {
            "count": len(amounts), "low": min(amounts), "high": max(amounts), "total": sum(amounts),
            "first": ", ".join(map(str, amounts[:10])),
        }  # fmt: skip

    @admin.display(description=_("Approval"))
    def approval(self, obj: RedPacketPool) -> str:
        if obj.approved_by_id:
            return _("Approved by %(user)s") % {"user": obj.approved_by}
        if redpacket_services.redpacket_pool_needs_approval(obj):
            return _("Awaiting a second admin's approval")
        return "—"

    @admin.action(description=_("Approve (second admin)"), permissions=["approve"])
    def approve(self, request, queryset):
        for pool in queryset:
            try:
                redpacket_services.redpacket_pool_approve(pool.id, approver=request.user)
                self.message_user(request, _("Pool %(id)s approved.") % {"id": pool.id}, messages.SUCCESS)
            except ApplicationError as exc:
                self.message_user(request, _("Pool %(id)s: %(error)s") % {"id": pool.id, "error": exc.message},
                                  messages.ERROR)  # fmt: skip

    def has_approve_permission(self, request) -> bool:
        return request.user.has_perm("crm.approve_redpacketpool")
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
        changed = {*form.changed_data, *(["eligibility"] if "eligible_segment" in form.changed_data else [])}
        fields = {name: form.cleaned_data[name] for name in changed if name in POOL_FIELDS}
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
    list_display = ["id", "pool", "contact", "amount_fen", "status", "billno", "last_error", "claimed_at", "paid_at"]
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


@admin.register(FissionInvite)
class FissionInviteAdmin(ModelAdmin):
    """Read-only: invites are made when a customer opens a gated pool's page (crm.services.fission)."""

    list_display = ["id", "pool", "inviter", "state", "created_at"]
    search_fields = ["state", "inviter__name", "inviter__external_userid"]
    raw_id_fields = ["pool", "inviter"]
    readonly_fields = ["pool", "inviter", "state", "config_id", "qr_code", "created_at"]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(FissionReferral)
class FissionReferralAdmin(ModelAdmin):
    """Read-only: friends counted from the add callbacks."""

    list_display = ["id", "pool", "invite", "invitee", "created_at"]
    search_fields = ["invite__state", "invitee__name", "invitee__external_userid"]
    raw_id_fields = ["pool", "invite", "invitee"]
    readonly_fields = ["pool", "invite", "invitee", "created_at"]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(GameSession)
class GameSessionAdmin(ModelAdmin):
    """Read-only: mini-game sessions the customer pages issued, finished once by a verified result."""

    list_display = ["id", "pool", "contact", "started_at", "finished_at", "score"]
    search_fields = ["nonce", "contact__name", "contact__external_userid"]
    list_filter = ["pool"]
    raw_id_fields = ["pool", "contact"]
    readonly_fields = ["pool", "contact", "nonce", "started_at", "finished_at", "score"]

    def has_add_permission(self, request) -> bool:
        return False


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
