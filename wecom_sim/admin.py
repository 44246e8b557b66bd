"""Django admin for the simulated world, with search and a "simulate 100 adds" action on contact ways.

Registered only when the simulator is mounted (settings.WECOM_SIM_ENABLED): a production console shows none of it.
The console's sidebar lists these models under System › Simulator."""

from __future__ import annotations

import time

from django.conf import settings
from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _
from unfold.admin import ModelAdmin, TabularInline

from wecom_sim import models as m
from wecom_sim.world import WorldError


def register(*models):
    """admin.register, when the simulator is mounted; otherwise the class stays unregistered."""

    def wrap(admin_class):
        if settings.WECOM_SIM_ENABLED:
            admin.site.register(models, admin_class)
        return admin_class

    return wrap


@register(m.SimCorp)
class SimCorpAdmin(ModelAdmin):
    list_display = ("corpid", "agentid", "mch_id", "clock_offset", "confirm_delay_seconds", "receive_quota")
    search_fields = ("corpid",)


@register(m.SimMember)
class SimMemberAdmin(ModelAdmin):
    list_display = ("userid", "name", "has_customer_contact", "activated", "resigned_at")
    search_fields = ("userid", "name")
    list_filter = ("has_customer_contact", "activated")


@register(m.SimShopper)
class SimShopperAdmin(ModelAdmin):
    list_display = ("external_userid", "name", "openid", "unionid", "created_at")
    search_fields = ("external_userid", "name", "openid", "unionid", "phone")


@register(m.SimFriendship)
class SimFriendshipAdmin(ModelAdmin):
    list_display = ("member", "shopper", "state", "add_way", "confirmed", "member_deleted", "customer_deleted",
                    "createtime")
    search_fields = ("member__userid", "shopper__external_userid", "shopper__name", "state")
    list_filter = ("confirmed", "member_deleted", "customer_deleted")
    raw_id_fields = ("member", "shopper")


@register(m.SimTagGroup)
class SimTagGroupAdmin(ModelAdmin):
    list_display = ("group_id", "name", "order", "deleted")
    search_fields = ("group_id", "name")


@register(m.SimTag)
class SimTagAdmin(ModelAdmin):
    list_display = ("tag_id", "name", "group", "order", "deleted")
    search_fields = ("tag_id", "name", "group__name")


@admin.action(description=_("Simulate 100 adds (seeded shoppers scan this contact way)"))
def simulate_100_adds(modeladmin, request, queryset):
    from wecom_sim.scenario import Scenario

    for way in queryset:
        try:
            result = Scenario(seed=int(time.time())).run(customers=100, config_id=way.config_id)
        except WorldError as exc:
            modeladmin.message_user(request, f"{way.config_id}: {exc.message}", messages.ERROR)
            continue
        added = len(result["added"])
        modeladmin.message_user(request, _("%(way)s: %(n)d shoppers added") % {"way": way.config_id, "n": added})


@register(m.SimContactWay)
class SimContactWayAdmin(ModelAdmin):
    list_display = ("config_id", "state", "type", "scene", "remark", "deleted", "created_at")
    search_fields = ("config_id", "state", "remark")
    actions = [simulate_100_adds]


@register(m.SimWelcomeCode)
class SimWelcomeCodeAdmin(ModelAdmin):
    list_display = ("code", "friendship", "issued_at", "used_at")
    search_fields = ("code", "friendship__shopper__external_userid")
    raw_id_fields = ("friendship",)


class SimGroupMemberInline(TabularInline):
    model = m.SimGroupMember
    extra = 0


@register(m.SimGroupChat)
class SimGroupChatAdmin(ModelAdmin):
    list_display = ("chat_id", "name", "owner", "status", "dismissed", "create_time")
    search_fields = ("chat_id", "name", "owner")
    inlines = [SimGroupMemberInline]


@register(m.SimJoinWay)
class SimJoinWayAdmin(ModelAdmin):
    list_display = ("config_id", "state", "auto_create_room", "room_base_name", "deleted")
    search_fields = ("config_id", "state", "remark")


class SimMassTaskInline(TabularInline):
    model = m.SimMassTask
    extra = 0


@register(m.SimMassMessage)
class SimMassMessageAdmin(ModelAdmin):
    list_display = ("msgid", "chat_type", "created_at", "cancelled")
    search_fields = ("msgid",)
    inlines = [SimMassTaskInline]


@register(m.SimMassResult)
class SimMassResultAdmin(ModelAdmin):
    list_display = ("message", "userid", "external_userid", "chat_id", "status", "send_time")
    search_fields = ("message__msgid", "userid", "external_userid", "chat_id")
    list_filter = ("status",)


@register(m.SimMedia)
class SimMediaAdmin(ModelAdmin):
    list_display = ("media_id", "type", "filename", "size", "created_at")
    search_fields = ("media_id", "filename")
    list_filter = ("type",)


@register(m.SimInboxMessage)
class SimInboxMessageAdmin(ModelAdmin):
    list_display = ("shopper", "kind", "from_userid", "received_at")
    search_fields = ("shopper__external_userid", "shopper__name", "text", "ref")
    list_filter = ("kind",)


@register(m.SimAppMessage)
class SimAppMessageAdmin(ModelAdmin):
    list_display = ("msgid", "msgtype", "sent_at")
    search_fields = ("msgid",)


@register(m.SimTransfer)
class SimTransferAdmin(ModelAdmin):
    list_display = ("external_userid", "kind", "handover_userid", "takeover_userid", "status", "takeover_time")
    search_fields = ("external_userid", "handover_userid", "takeover_userid")
    list_filter = ("kind", "status")


@register(m.SimCallback)
class SimCallbackAdmin(ModelAdmin):
    list_display = ("id", "event", "change_type", "status", "attempts", "last_status", "created_at")
    search_fields = ("event", "change_type", "xml", "last_error")
    list_filter = ("status", "event")


@register(m.SimRedPack)
class SimRedPackAdmin(ModelAdmin):
    list_display = ("mch_billno", "re_openid", "total_amount", "status", "send_time")
    search_fields = ("mch_billno", "re_openid", "send_listid")
    list_filter = ("status",)


@register(m.SimAccessToken)
class SimAccessTokenAdmin(ModelAdmin):
    list_display = ("token", "created_at", "expires_at", "revoked")
    search_fields = ("token",)


@register(m.SimGroupMember)
class SimGroupMemberAdmin(ModelAdmin):
    list_display = ("chat", "userid", "type", "join_scene", "join_time")
    search_fields = ("userid", "name", "chat__chat_id", "state")


@register(m.SimMassTask)
class SimMassTaskAdmin(ModelAdmin):
    list_display = ("message", "userid", "status", "send_time")
    search_fields = ("userid", "message__msgid")


@register(m.SimOAuthApp)
class SimOAuthAppAdmin(ModelAdmin):
    list_display = ("appid", "redirect_domain", "code_ttl_seconds")
    search_fields = ("appid", "redirect_domain")


@register(m.SimOAuthCode)
class SimOAuthCodeAdmin(ModelAdmin):
    list_display = ("code", "app", "shopper", "scope", "created_at", "expires_at", "used_at")
    search_fields = ("code", "shopper__external_userid", "app__appid")
