"""Django admin for the simulated world, with search and a "simulate 100 adds" action on contact ways."""

from __future__ import annotations

import time

from django.contrib import admin, messages

from wecom_sim import models as m
from wecom_sim.world import WorldError


@admin.register(m.SimCorp)
class SimCorpAdmin(admin.ModelAdmin):
    list_display = ("corpid", "agentid", "mch_id", "clock_offset", "confirm_delay_seconds", "receive_quota")
    search_fields = ("corpid",)


@admin.register(m.SimMember)
class SimMemberAdmin(admin.ModelAdmin):
    list_display = ("userid", "name", "has_customer_contact", "activated", "resigned_at")
    search_fields = ("userid", "name")
    list_filter = ("has_customer_contact", "activated")


@admin.register(m.SimShopper)
class SimShopperAdmin(admin.ModelAdmin):
    list_display = ("external_userid", "name", "openid", "unionid", "created_at")
    search_fields = ("external_userid", "name", "openid", "unionid", "phone")


@admin.register(m.SimFriendship)
class SimFriendshipAdmin(admin.ModelAdmin):
    list_display = ("member", "shopper", "state", "add_way", "confirmed", "member_deleted", "customer_deleted",
                    "createtime")
    search_fields = ("member__userid", "shopper__external_userid", "shopper__name", "state")
    list_filter = ("confirmed", "member_deleted", "customer_deleted")
    raw_id_fields = ("member", "shopper")


@admin.register(m.SimTagGroup)
class SimTagGroupAdmin(admin.ModelAdmin):
    list_display = ("group_id", "name", "order", "deleted")
    search_fields = ("group_id", "name")


@admin.register(m.SimTag)
class SimTagAdmin(admin.ModelAdmin):
    list_display = ("tag_id", "name", "group", "order", "deleted")
    search_fields = ("tag_id", "name", "group__name")


@admin.action(description="Simulate 100 adds (seeded shoppers scan this contact way)")
def simulate_100_adds(modeladmin, request, queryset):
    from wecom_sim.scenario import Scenario

    for way in queryset:
        try:
            result = Scenario(seed=int(time.time())).run(customers=100, config_id=way.config_id)
        except WorldError as exc:
            modeladmin.message_user(request, f"{way.config_id}: {exc.message}", messages.ERROR)
            continue
        modeladmin.message_user(request, f"{way.config_id}: {len(result['added'])} shoppers added")


@admin.register(m.SimContactWay)
class SimContactWayAdmin(admin.ModelAdmin):
    list_display = ("config_id", "state", "type", "scene", "remark", "deleted", "created_at")
    search_fields = ("config_id", "state", "remark")
    actions = [simulate_100_adds]


@admin.register(m.SimWelcomeCode)
class SimWelcomeCodeAdmin(admin.ModelAdmin):
    list_display = ("code", "friendship", "issued_at", "used_at")
    search_fields = ("code", "friendship__shopper__external_userid")
    raw_id_fields = ("friendship",)


class SimGroupMemberInline(admin.TabularInline):
    model = m.SimGroupMember
    extra = 0


@admin.register(m.SimGroupChat)
class SimGroupChatAdmin(admin.ModelAdmin):
    list_display = ("chat_id", "name", "owner", "status", "dismissed", "create_time")
    search_fields = ("chat_id", "name", "owner")
    inlines = [SimGroupMemberInline]


@admin.register(m.SimJoinWay)
class SimJoinWayAdmin(admin.ModelAdmin):
    list_display = ("config_id", "state", "auto_create_room", "room_base_name", "deleted")
    search_fields = ("config_id", "state", "remark")


class SimMassTaskInline(admin.TabularInline):
    model = m.SimMassTask
    extra = 0


@admin.register(m.SimMassMessage)
class SimMassMessageAdmin(admin.ModelAdmin):
    list_display = ("msgid", "chat_type", "created_at", "cancelled")
    search_fields = ("msgid",)
    inlines = [SimMassTaskInline]


@admin.register(m.SimMassResult)
class SimMassResultAdmin(admin.ModelAdmin):
    list_display = ("message", "userid", "external_userid", "chat_id", "status", "send_time")
    search_fields = ("message__msgid", "userid", "external_userid", "chat_id")
    list_filter = ("status",)


@admin.register(m.SimInboxMessage)
class SimInboxMessageAdmin(admin.ModelAdmin):
    list_display = ("shopper", "kind", "from_userid", "received_at")
    search_fields = ("shopper__external_userid", "shopper__name", "text", "ref")
    list_filter = ("kind",)


@admin.register(m.SimAppMessage)
class SimAppMessageAdmin(admin.ModelAdmin):
    list_display = ("msgid", "msgtype", "sent_at")
    search_fields = ("msgid",)


@admin.register(m.SimTransfer)
class SimTransferAdmin(admin.ModelAdmin):
    list_display = ("external_userid", "kind", "handover_userid", "takeover_userid", "status", "takeover_time")
    search_fields = ("external_userid", "handover_userid", "takeover_userid")
    list_filter = ("kind", "status")


@admin.register(m.SimCallback)
class SimCallbackAdmin(admin.ModelAdmin):
    list_display = ("id", "event", "change_type", "status", "attempts", "last_status", "created_at")
    search_fields = ("event", "change_type", "xml", "last_error")
    list_filter = ("status", "event")


@admin.register(m.SimRedPack)
class SimRedPackAdmin(admin.ModelAdmin):
    list_display = ("mch_billno", "re_openid", "total_amount", "status", "send_time")
    search_fields = ("mch_billno", "re_openid", "send_listid")
    list_filter = ("status",)


@admin.register(m.SimAccessToken)
class SimAccessTokenAdmin(admin.ModelAdmin):
    list_display = ("token", "created_at", "expires_at", "revoked")
    search_fields = ("token",)


@admin.register(m.SimGroupMember)
class SimGroupMemberAdmin(admin.ModelAdmin):
    list_display = ("chat", "userid", "type", "join_scene", "join_time")
    search_fields = ("userid", "name", "chat__chat_id", "state")


@admin.register(m.SimMassTask)
class SimMassTaskAdmin(admin.ModelAdmin):
    list_display = ("message", "userid", "status", "send_time")
    search_fields = ("userid", "message__msgid")
