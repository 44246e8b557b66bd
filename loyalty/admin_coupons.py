"""Console (admin) of the coupons area: the rewards catalogue (kind, value, stock, per-customer limit, validity,
eligible tiers), written through loyalty.services.rewards, and the issued coupons (read-only: written by
redemptions, grants and the till only).

The catalogue screen replaces loyalty.admin's RewardAdmin (same form base and delete service, more fields)."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from unfold.admin import ModelAdmin, StackedInline

from crm.admin.base import ServiceModelAdmin, add_service_error, adopt
from crm.admin.campaigns import CampaignAdmin
from crm.errors import ApplicationError
from crm.services.campaigns import EDITABLE as CAMPAIGN_EDITABLE
from loyalty.admin import ReadOnlyAdminMixin, ServiceDeleteMixin, ServiceForm
from loyalty.models import CampaignCoupon, CampaignCouponGrant, Card, Coupon, JourneyGrant, JourneyStep, Reward
from loyalty.scoping import scope_to_user_stores, sees_all_stores
from loyalty.services.campaign_coupons import campaign_coupon_set, campaign_coupon_stats, campaign_coupon_validate
from loyalty.services.journeys import journey_step_save, journey_step_validate
from loyalty.services.rewards import CATALOGUE_FIELDS, reward_delete, reward_save, reward_validate

FORM_FIELDS = [
    "name", "kind", "description", "value_fen", "points_cost", "stock", "per_customer_limit",
    "valid_from", "valid_until", "valid_days", "eligible_tiers", "is_active",
]  # fmt: skip


class CatalogueForm(ServiceForm):
    class Meta:
        model = Reward
        fields = FORM_FIELDS

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["kind"].required = False  # left out: a gift, as before kinds existed

    def clean_kind(self) -> str:
        return self.cleaned_data.get("kind") or Reward.Kind.GIFT

    def service_validate(self, data: dict) -> None:
        reward_validate(
            name=data.get("name", ""),
            points_cost=data.get("points_cost"),
            stock=data.get("stock"),
            **{field: data.get(field) for field in CATALOGUE_FIELDS if field != "description"},
        )


if admin.site.is_registered(Reward):
    admin.site.unregister(Reward)


@admin.register(Reward)
class CatalogueAdmin(ServiceDeleteMixin, ServiceModelAdmin):
    """The rewards catalogue; a reward once redeemed is switched off, not deleted."""

    form = CatalogueForm
    list_display = ["name", "kind", "points_cost", "stock", "per_customer_limit", "valid_until", "is_active"]
    list_filter = ["kind", "is_active", "eligible_tiers"]
    search_fields = ["name"]
    filter_horizontal = ["eligible_tiers"]
    delete_service = staticmethod(reward_delete)

    def save_model(self, request, obj, form, change) -> None:
        data = form.cleaned_data
        adopt(
            obj,
            reward_save(
                name=data["name"],
                points_cost=data["points_cost"],
                stock=data.get("stock"),
                is_active=data.get("is_active", False),
                reward_id=obj.pk if change else None,
                eligible_tier_ids=[tier.pk for tier in data.get("eligible_tiers") or []],
                **{field: data.get(field) for field in CATALOGUE_FIELDS},
            ),
        )

    def save_related(self, request, form, formsets, change) -> None:
        """The service already set the eligible tiers (the form's own m2m save would write them again)."""
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)


@admin.register(Coupon)
class CouponAdmin(ReadOnlyAdminMixin, ModelAdmin):
    list_display = ["issued_at", "card", "reward", "source", "expires_at", "redeemed_at", "redeemed_store"]
    list_filter = ["source", "reward"]
    search_fields = ["card__number", "reward__name", "code"]
    list_select_related = ["card", "reward", "redeemed_store"]
    # The code is the customer's secret (their QR): searchable for support, not listed.
    exclude = ["code"]

    def get_queryset(self, request):
        """A store-bound user sees the coupons of cards their stores serve, and those redeemed at their stores."""
        qs = super().get_queryset(request)
        if sees_all_stores(request.user):
            return qs
        cards = scope_to_user_stores(Card.objects.all(), request.user)
        return qs.filter(Q(card__in=cards) | Q(redeemed_store__members=request.user)).distinct()


# --- a campaign's coupon: a section of crm's campaign compose form --------------------------------------------
# crm's CampaignAdmin cannot know loyalty (import-linter), so loyalty adds this inline to it. Saved through
# campaign_coupon_set (a text-only message gets the card page's link); granted on delivery (campaign_coupons).


class CampaignCouponForm(forms.ModelForm):
    class Meta:
        model = CampaignCoupon
        fields = ["reward"]
        labels = {"reward": _("Coupon for each customer reached")}
        help_texts = {"reward": _("Granted without points when the message is delivered; the message links to the "
                                  "card page, where the coupon shows.")}  # fmt: skip

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "reward" in self.fields:
            self.fields["reward"].queryset = Reward.objects.filter(kind=Reward.Kind.COUPON, is_active=True)
            self.fields["reward"].required = False  # empty: no coupon (an existing one is taken away)

    def clean(self):
        data = super().clean()
        reward = data.get("reward")
        if reward is None or self.errors:
            return data
        # The parent form's posted fields: what the message will be once saved.
        attachment = self.data.get("attachment")
        link_url = self.data.get("link_url") or ""
        if attachment is None:  # an older form without the choice: a link if one is given
            attachment = "link" if link_url else ""
        try:
            if self.data.get("target", "segment") not in ("", "segment"):
                raise ApplicationError(_("Only a campaign to customers (a segment) can grant coupons."),
                                       field="reward")  # fmt: skip
            campaign_coupon_validate(reward_id=reward.pk, attachment=attachment, link_url=link_url)
        except ApplicationError as exc:
            add_service_error(self, exc)
        return data


class CampaignCouponFormSet(forms.BaseInlineFormSet):
    def __init__(self, data=None, *args, **kwargs):
        prefix = kwargs.get("prefix") or self.get_default_prefix()
        if data is not None and f"{prefix}-TOTAL_FORMS" not in data:
            # A compose form posted without this section (a page from before it existed, a scripted post):
            # the coupon stays as it is rather than the whole campaign being refused for a missing section.
            data = data.copy()
            data.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"})
        super().__init__(data, *args, **kwargs)

    def save(self, commit=True):
        """Through the service, for the saved campaign: set, change or remove its coupon."""
        self.new_objects, self.changed_objects, self.deleted_objects = [], [], []
        for form in self.forms:
            if not form.has_changed() or not getattr(form, "cleaned_data", None):
                continue
            deleting = form.cleaned_data.get("DELETE") or form.cleaned_data.get("reward") is None
            reward = None if deleting else form.cleaned_data["reward"]
            row = campaign_coupon_set(campaign_id=self.instance.pk, reward_id=reward.pk if reward else None)
            if row is not None:
                (self.new_objects if form.instance.pk is None else self.changed_objects).append(
                    row if form.instance.pk is None else (row, form.changed_data)
                )
            elif form.instance.pk is not None:
                self.deleted_objects.append(form.instance)
        return self.new_objects


class CampaignCouponInline(StackedInline):
    model = CampaignCoupon
    form = CampaignCouponForm
    formset = CampaignCouponFormSet
    extra = 1  # the choice shows at once; left empty it saves nothing
    max_num = 1
    verbose_name = _("Coupon")
    verbose_name_plural = _("Coupon for each customer reached")
    fields = ["reward", "granted"]
    readonly_fields = ["granted"]

    @admin.display(description=_("Granted so far"))
    def granted(self, obj) -> str:
        if obj is None or obj.pk is None:
            return "—"
        stats = campaign_coupon_stats(obj.campaign_id)
        if not stats:
            return "0"
        return ", ".join(f"{key}: {n}" for key, n in sorted(stats.items()))

    def _locked(self, obj) -> bool:
        return obj is not None and obj.status not in CAMPAIGN_EDITABLE

    def get_readonly_fields(self, request, obj=None):
        return ["reward", "granted"] if self._locked(obj) else self.readonly_fields

    def has_add_permission(self, request, obj=None) -> bool:
        return not self._locked(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None) -> bool:
        return not self._locked(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return not self._locked(obj) and super().has_delete_permission(request, obj)


if CampaignCouponInline not in CampaignAdmin.inlines:  # after the red-packet pool, on crm's compose form
    CampaignAdmin.inlines = [*CampaignAdmin.inlines, CampaignCouponInline]


# --- journey steps: "when <moment>, grant <coupon>" ----------------------------------------------------------


class JourneyStepForm(ServiceForm):
    class Meta:
        model = JourneyStep
        fields = ["name", "trigger", "tier", "action", "reward", "is_active"]
        labels = {
            "name": _("Name"), "trigger": _("When"), "tier": _("Tier"), "action": _("Then"),
            "reward": _("Coupon"), "is_active": _("Active"),
        }  # fmt: skip
        help_texts = {
            "tier": _("Only for 'Enters a tier': the tier the customer moves up into."),
            "reward": _("Granted without points, once per customer for this step; stock and validity apply."),
        }  # fmt: skip

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "reward" in self.fields:
            self.fields["reward"].queryset = Reward.objects.filter(kind=Reward.Kind.COUPON)

    def service_validate(self, data: dict) -> None:
        journey_step_validate(
            name=data.get("name") or "",
            trigger=data.get("trigger") or "",
            action=data.get("action") or JourneyStep.Action.GRANT_COUPON,
            reward_id=data["reward"].pk if data.get("reward") else None,
            tier_id=data["tier"].pk if data.get("tier") else None,
        )


@admin.register(JourneyStep)
class JourneyStepAdmin(ServiceModelAdmin):
    """Journey steps, written through loyalty.services.journeys; the grants they made are listed read-only."""

    form = JourneyStepForm
    list_display = ["name", "trigger", "tier", "action", "reward", "is_active", "granted"]
    list_filter = ["trigger", "is_active"]
    search_fields = ["name"]
    conditional_fields = {"tier": "trigger == 'tier_entered'"}

    @admin.display(description=_("Granted"))
    def granted(self, obj) -> int:
        return obj.grants.filter(status=JourneyGrant.Status.GRANTED).count()

    def save_model(self, request, obj, form, change) -> None:
        data = form.cleaned_data
        adopt(
            obj,
            journey_step_save(
                step_id=obj.pk if change else None,
                name=data["name"],
                trigger=data["trigger"],
                action=data.get("action") or JourneyStep.Action.GRANT_COUPON,
                reward_id=data["reward"].pk,
                tier_id=data["tier"].pk if data.get("tier") else None,
                is_active=data.get("is_active", False),
            ),
        )


@admin.register(JourneyGrant)
class JourneyGrantAdmin(ReadOnlyAdminMixin, ModelAdmin):
    list_display = ["step", "contact", "status", "reason", "coupon", "created_at"]
    list_filter = ["status", "step"]
    search_fields = ["step__name", "contact__name", "contact__external_userid"]
    list_select_related = ["step", "contact", "coupon"]


@admin.register(CampaignCoupon)
class CampaignCouponAdmin(ReadOnlyAdminMixin, ModelAdmin):
    """Which campaign grants which coupon: set on the campaign's compose form (or the API), read here."""

    list_display = ["campaign", "reward", "created_at"]
    search_fields = ["campaign__name", "reward__name"]
    list_select_related = ["campaign", "reward"]


@admin.register(CampaignCouponGrant)
class CampaignCouponGrantAdmin(ReadOnlyAdminMixin, ModelAdmin):
    """What each campaign run gave each recipient: the coupon, or why not (out of stock)."""

    list_display = ["campaign_coupon", "run", "contact", "status", "reason", "coupon", "created_at"]
    list_filter = ["status", "reason"]
    search_fields = ["contact__name", "contact__external_userid", "campaign_coupon__campaign__name"]
    list_select_related = ["campaign_coupon__campaign", "contact", "coupon"]
