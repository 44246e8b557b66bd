"""Console: group lucky packets (a pool with a customer group), each with its claims and the group's board."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from unfold.admin import TabularInline
from unfold.decorators import action as unfold_action

from crm.admin.base import ServiceModelAdmin, add_service_error, adopt
from crm.errors import ApplicationError
from crm.models import CustomerGroup, GroupPacket, GroupPacketPost, RedPacketClaim, RedPacketPool
from crm.services import group_packets as gp
from crm.services.redpackets import redpacket_pool_validate

FIELDS = ["group", "budget_fen", "count", "min_fen", "max_fen", "starts_at", "expires_at", "act_name", "wishing"]


class GroupPacketForm(forms.ModelForm):
    """Checked by the pools' own validation (budget within count x WeChat Pay's min/max), messages on the field."""

    class Meta:
        model = GroupPacket
        fields = FIELDS

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "group" in self.fields:
            self.fields["group"].required = True
            self.fields["group"].queryset = CustomerGroup.objects.filter(status=CustomerGroup.Status.ACTIVE)
        if "expires_at" in self.fields:
            self.fields["expires_at"].required = False
            self.fields["expires_at"].help_text = _("Empty: 24 hours after the start.")
        if "act_name" in self.fields:
            self.initial.setdefault("act_name", "Group red packet")

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        expires_at = data.get("expires_at") or (data.get("starts_at") or timezone.now()) + gp.GROUP_PACKET_EXPIRY
        try:
            redpacket_pool_validate(budget_fen=data["budget_fen"], count=data["count"], mode=RedPacketPool.Mode.LUCKY,
                                    min_fen=data.get("min_fen"), max_fen=data.get("max_fen"),
                                    expires_at=expires_at)  # fmt: skip
        except ApplicationError as exc:
            add_service_error(self, exc)
        return data


class ClaimInline(TabularInline):
    model = RedPacketClaim
    fk_name = "pool"
    extra = 0
    can_delete = False
    fields = ["contact", "amount_fen", "status", "billno", "claimed_at", "paid_at", "last_error"]
    readonly_fields = fields
    verbose_name = _("claim")
    verbose_name_plural = _("claims")

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(GroupPacket)
class GroupPacketAdmin(ServiceModelAdmin):
    form = GroupPacketForm
    list_display = ["id", "group", "budget_fen", "count", "opened", "status", "expires_at"]
    list_filter = ["status"]
    search_fields = ["group__name", "act_name"]
    inlines = [ClaimInline]
    actions = ["launch"]
    actions_detail = ["launch_one", "repost_one"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(group__isnull=False).select_related("group")

    def has_launch_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("crm.change_grouppacket")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_readonly_fields(self, request, obj=None):
        shown = ["status", "post", "links", "board"]
        return [*FIELDS, *shown] if obj is not None else []

    def get_fields(self, request, obj=None):
        return [*FIELDS, "status", "post", "links", "board"] if obj is not None else FIELDS

    def get_inlines(self, request, obj=None):
        return self.inlines if obj is not None else []

    @admin.display(description=_("Opened"))
    def opened(self, obj: RedPacketPool) -> str:
        return f"{obj.claims.count()} / {obj.count}"

    @admin.display(description=_("Post in the group"))
    def post(self, obj: RedPacketPool) -> str:
        post = GroupPacketPost.objects.filter(pool_id=obj.id).first()
        if post is None:
            return "—"
        return f"{post.get_status_display()} {post.msgid or post.errmsg}".strip()

    @admin.display(description=_("Links"))
    def links(self, obj: RedPacketPool) -> str:
        return format_html('<a href="{}" target="_blank">{}</a><br><a href="{}" target="_blank" data-board-link>{}</a>',
                           gp.group_packet_link(obj.id), _("Open page (posted in the group)"),
                           gp.board_url(obj.id), _("The group's board"))  # fmt: skip

    @admin.display(description=_("Board"))
    def board(self, obj: RedPacketPool) -> str:
        board, best = gp.group_packet_board(obj.id), _("Best luck")
        rows = format_html_join("", "<li data-contact-id='{}'>{}: {} fen{}</li>", (
            (c["contact_id"], c["name"], c["amount_fen"], format_html(" — {}", best) if c["best_luck"] else "")
            for c in board["claims"]
        ))  # fmt: skip
        summary = _("%(opened)s of %(count)s opened, %(fen)s fen; %(left)s left") % {
            "opened": board["opened"], "count": board["count"], "fen": board["opened_fen"], "left": board["remaining"]
        }  # fmt: skip
        return format_html('<p data-board-summary data-remaining="{}">{}</p><ul>{}</ul>', board["remaining"],
                           summary, rows)  # fmt: skip

    def save_model(self, request, obj, form, change) -> None:
        if change:
            return  # a created packet is changed by launching it, nothing else
        data = {name: form.cleaned_data.get(name) for name in FIELDS}
        data = {k: v for k, v in data.items() if v not in (None, "")}
        group = data.pop("group")
        adopt(obj, gp.group_packet_create(group_id=group.id, created_by=request.user, **data))

    def _launch(self, request, pool_id: int) -> None:
        try:
            gp.group_packet_launch(pool_id)
            self.message_user(request, _("Group red packet %(id)s launched and posted in its group.") % {"id": pool_id},
                              messages.SUCCESS)  # fmt: skip
        except ApplicationError as exc:
            self.message_user(request, _("Pool %(id)s: %(error)s") % {"id": pool_id, "error": exc.message},
                              messages.ERROR)  # fmt: skip

    @admin.action(description=_("Launch and post in the group"), permissions=["launch"])
    def launch(self, request, queryset):
        for pool in queryset:
            self._launch(request, pool.id)

    @unfold_action(description=_("Launch and post in the group"), icon="rocket_launch", permissions=["launch"])
    def launch_one(self, request, object_id):
        from django.http import HttpResponseRedirect
        from django.urls import reverse

        self._launch(request, int(object_id))
        return HttpResponseRedirect(reverse("admin:crm_grouppacket_change", args=[object_id]))

    @unfold_action(description=_("Post in the group again (failed post)"), icon="send", permissions=["launch"])
    def repost_one(self, request, object_id):
        from django.http import HttpResponseRedirect
        from django.urls import reverse

        from crm.admin.draw_records import repost_message

        repost_message(self, request, int(object_id))
        return HttpResponseRedirect(reverse("admin:crm_grouppacket_change", args=[object_id]))
