"""Console for group lucky draws: create through draw_create; the change page is the commit/reveal page (read-only:
the state machine owns it) with entries, winners and fulfilment, and detail actions to open, close and reveal."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from unfold.admin import ModelAdmin, TabularInline
from unfold.decorators import action as unfold_action

from crm.admin.base import ServiceModelAdmin, add_service_error, adopt
from crm.errors import ApplicationError
from crm.models import (
    CustomerGroup,
    GroupDraw,
    GroupDrawEntry,
    GroupDrawPrize,
    GroupDrawWinner,
    RedPacketClaim,
    RedPacketPool,
)
from crm.services import draws as svc


class GroupDrawAddForm(forms.ModelForm):
    """One prize on the add form (the API takes several)."""

    prize_kind = forms.ChoiceField(label=_("Prize"), choices=GroupDrawPrize.Kind.choices)
    prize_value = forms.IntegerField(label=_("Reward id, points or fen"), min_value=1)
    prize_winners = forms.IntegerField(label=_("Number of winners"), min_value=1, initial=1)

    class Meta:
        model = GroupDraw
        fields = ["name", "groups", "opens_at", "closes_at"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["groups"].queryset = CustomerGroup.objects.filter(status=CustomerGroup.Status.ACTIVE)

    def validate_constraints(self):
        pass  # the service checks (closes after opens) and names the field

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        value_field = {"coupon": "reward_id", "points": "points", "red_packet": "amount_fen"}[data["prize_kind"]]
        self.service_kwargs = {
            "name": data["name"], "group_ids": [g.pk for g in data["groups"]], "opens_at": data["opens_at"],
            "closes_at": data["closes_at"],
            "prizes": [{"kind": data["prize_kind"], value_field: data["prize_value"],
                        "winners": data["prize_winners"]}],
        }
        return data


class PrizeInline(TabularInline):
    model = GroupDrawPrize
    extra = 0
    can_delete = False
    fields = readonly_fields = ["position", "kind", "reward_id", "points", "amount_fen", "winners", "pool"]

    @admin.display(description=_("Red-packet pool"))
    def pool(self, obj: GroupDrawPrize) -> str:
        # The prize's money (approved there over the threshold, reconciled like every pool).
        pool = RedPacketPool.objects.filter(draw_prize=obj).first()
        if pool is None:
            return "—"
        return format_html('<a href="{}" data-prize-pool="{}">#{} {}</a>', reverse("console:pool", args=[pool.pk]),
                           pool.pk, pool.pk, pool.get_status_display())  # fmt: skip

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class EntryInline(TabularInline):
    model = GroupDrawEntry
    extra = 0
    can_delete = False
    fields = readonly_fields = ["external_userid", "contact", "created_at"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class WinnerInline(TabularInline):
    model = GroupDrawWinner
    extra = 0
    can_delete = False
    fields = readonly_fields = ["rank", "entry", "prize", "status", "reason", "fulfilled_ref", "payout",
                                "fulfilled_at"]

    @admin.display(description=_("Payout"))
    def payout(self, obj: GroupDrawWinner) -> str:
        # A red-packet prize's claim (its billno is the fulfilled reference): queued, paying, paid or failed.
        claim = RedPacketClaim.objects.filter(billno=obj.fulfilled_ref).first() if obj.fulfilled_ref else None
        return claim.get_status_display() if claim else "—"

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(GroupDraw)
class GroupDrawAdmin(ServiceModelAdmin):
    list_display = ["name", "status", "opens_at", "closes_at", "commitment_short", "revealed_at"]
    list_filter = ["status"]
    search_fields = ["name", "commitment"]
    actions_detail = ["open_draw", "close_draw", "reveal_draw", "retry_failed", "verify_page"]
    inlines = [PrizeInline, EntryInline, WinnerInline]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = GroupDrawAddForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["name", "groups", "opens_at", "closes_at", "prize_kind", "prize_value", "prize_winners"]
        return ["name", "groups", "status", "opens_at", "closes_at", "commitment", "seed_shown", "opened_at",
                "closed_at", "revealed_at"]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.get_fields(request, obj)

    def get_inlines(self, request, obj):
        return [] if obj is None else self.inlines

    @admin.display(description=_("Commitment"))
    def commitment_short(self, obj: GroupDraw) -> str:
        return obj.commitment[:16]

    @admin.display(description=_("Seed"))
    def seed_shown(self, obj: GroupDraw) -> str:
        # Never shown before the reveal: a seed known early would let anyone pick the winners.
        return obj.seed_hex if obj.status == GroupDraw.Status.REVEALED else _("(secret until revealed)")

    def save_model(self, request, obj, form, change) -> None:
        if change:
            return
        try:
            adopt(obj, svc.draw_create(**form.service_kwargs, user=request.user))
        except ApplicationError as exc:
            add_service_error(form, exc)
            raise

    def save_related(self, request, form, formsets, change) -> None:
        pass  # draw_create set the groups and prizes

    def _run(self, request, object_id, func, done):
        try:
            func(int(object_id))
            self.message_user(request, done, messages.SUCCESS)
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
        return HttpResponseRedirect(reverse("admin:crm_groupdraw_change", args=[object_id]))

    @unfold_action(description=_("Open (publish the commitment)"), url_path="open-draw", permissions=["change"])
    def open_draw(self, request, object_id):
        return self._run(request, object_id, svc.draw_open, _("Opened: the commitment is being announced."))

    @unfold_action(description=_("Close entries"), url_path="close-draw", permissions=["change"])
    def close_draw(self, request, object_id):
        return self._run(request, object_id, svc.draw_close, _("Entries closed."))

    @unfold_action(description=_("Reveal the seed and draw winners"), url_path="reveal-draw", permissions=["change"])
    def reveal_draw(self, request, object_id):
        return self._run(request, object_id, svc.draw_reveal, _("Revealed: winners drawn, prizes being granted."))

    @unfold_action(description=_("Retry failed prizes and announcements"), url_path="retry-failed",
                   permissions=["change"])
    def retry_failed(self, request, object_id):
        def run(draw_id):
            counts = svc.draw_retry_failed(draw_id, user=request.user)
            if not counts:
                raise ApplicationError(_("Nothing failed: nothing to retry."), code="nothing_failed")
            return counts

        try:
            counts = run(int(object_id))
            level = messages.SUCCESS if set(counts) <= {"fulfilled", "announcement_sent"} else messages.WARNING
            self.message_user(request, _("Retried: %(outcomes)s.") % {
                "outcomes": ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))}, level)
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
        return HttpResponseRedirect(reverse("admin:crm_groupdraw_change", args=[object_id]))

    @unfold_action(description=_("Verify page"), url_path="verify-page", permissions=["view"])
    def verify_page(self, request, object_id):
        return HttpResponseRedirect(reverse("group-draw-verify", args=[object_id]))


@admin.register(GroupDrawWinner)
class GroupDrawWinnerAdmin(ModelAdmin):
    list_display = ["draw", "rank", "entry", "prize", "status", "reason", "fulfilled_at"]
    list_filter = ["status"]
    search_fields = ["entry__external_userid", "entry__contact__name", "draw__name"]
    actions = ["retry_prize"]

    def has_retry_permission(self, request) -> bool:
        return request.user.has_perm("crm.change_groupdraw")

    @admin.action(description=_("Retry the failed prizes"), permissions=["retry"])
    def retry_prize(self, request, queryset):
        for winner in queryset.filter(status=GroupDrawWinner.Status.FAILED):
            try:
                outcome = svc.winner_fulfil_retry(winner.pk, user=request.user)
            except ApplicationError as exc:
                outcome = exc.code
            level = messages.SUCCESS if outcome == "fulfilled" else messages.ERROR
            self.message_user(request, _("Winner %(rank)s of %(draw)s: %(outcome)s") % {
                "rank": winner.rank, "draw": winner.draw, "outcome": outcome}, level)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


