from django.urls import path, re_path

from wecom_sim import admin_api, oauth, pay
from wecom_sim.cgi import base, contact_ways, contacts, groups, mass, media, members, tags, transfers  # noqa: F401  (register)

app_name = "wecom_sim"

admin_urls = [
    path("admin/", admin_api.index, name="admin-index"),
    path("admin/reset", admin_api.reset, name="reset"),
    path("admin/corp", admin_api.corp_view, name="corp"),
    path("admin/clock", admin_api.clock_view, name="clock"),
    path("admin/clock/advance", admin_api.clock_advance, name="clock-advance"),
    path("admin/members", admin_api.members, name="members"),
    path("admin/members/<str:userid>/resign", admin_api.member_resign, name="member-resign"),
    path("admin/members/<str:userid>/delete_customer", admin_api.member_delete_customer, name="member-delete"),
    path("admin/members/<str:userid>/confirm_add", admin_api.member_confirm_add, name="member-confirm-add"),
    path("admin/members/<str:userid>/edit_customer", admin_api.member_edit_customer, name="member-edit"),
    path("admin/corp_tags", admin_api.corp_tags, name="corp-tags"),
    path("admin/corp_tags/<str:tag_id>/delete", admin_api.corp_tag_delete, name="corp-tag-delete"),
    path("admin/corp_tags/<str:tag_id>/edit", admin_api.corp_tag_edit, name="corp-tag-edit"),
    path("admin/shoppers", admin_api.shoppers, name="shoppers"),
    path("admin/shoppers/<str:eid>/scan_contact_way", admin_api.shopper_scan, name="shopper-scan"),
    path("admin/shoppers/<str:eid>/delete_staff", admin_api.shopper_delete_staff, name="shopper-delete-staff"),
    path("admin/shoppers/<str:eid>/refuse_transfer", admin_api.shopper_refuse_transfer, name="shopper-refuse"),
    path("admin/shoppers/<str:eid>/join_group", admin_api.shopper_join_group, name="shopper-join"),
    path("admin/shoppers/<str:eid>/leave_group", admin_api.shopper_leave_group, name="shopper-leave"),
    path("admin/shoppers/<str:eid>/inbox", admin_api.shopper_inbox, name="shopper-inbox"),
    path("admin/shoppers/<str:eid>/open_link", admin_api.shopper_open_link, name="shopper-open-link"),
    path("admin/groupchats", admin_api.groupchats, name="groupchats"),
    path("admin/groupchats/<str:chat_id>/dismiss", admin_api.groupchat_dismiss, name="groupchat-dismiss"),
    path("admin/groupchats/<str:chat_id>/add_member", admin_api.groupchat_add_member, name="groupchat-add-member"),
    path("admin/groupchats/<str:chat_id>/remove_member", admin_api.groupchat_remove_member,
         name="groupchat-remove-member"),
    path("admin/groupchats/<str:chat_id>/rename", admin_api.groupchat_rename, name="groupchat-rename"),
    path("admin/groupmsg/<str:msgid>/confirm", admin_api.groupmsg_confirm, name="groupmsg-confirm"),
    path("admin/deliveries", admin_api.deliveries, name="deliveries"),
    path("admin/faults", admin_api.faults_view, name="faults"),
    path("admin/tokens/revoke", admin_api.tokens_revoke, name="tokens-revoke"),
    path("admin/stats", admin_api.stats, name="stats"),
    path("admin/callbacks", admin_api.callbacks_list, name="callbacks"),
    path("admin/callbacks/drain", admin_api.callbacks_drain, name="callbacks-drain"),
    path("admin/callbacks/verify_url", admin_api.callbacks_verify_url, name="callbacks-verify-url"),
    path("admin/scenario/run", admin_api.scenario_run, name="scenario-run"),
    path("admin/pay/redpacks", admin_api.pay_redpacks, name="pay-redpacks"),
    path("admin/pay/redpacks/<str:billno>/receive", admin_api.pay_redpack_receive, name="pay-redpack-receive"),
]

urlpatterns = [
    *admin_urls,
    path("mch/mmpaymkttransfers/sendworkwxredpack", pay.sendworkwxredpack, name="pay-send"),
    path("mch/mmpaymkttransfers/queryworkwxredpack", pay.queryworkwxredpack, name="pay-query"),
    *oauth.urlpatterns(),  # WeChat web OAuth (open.weixin.qq.com / api.weixin.qq.com paths)
    re_path(r"^cgi-bin/(?P<api_path>[a-z0-9_/]+)$", base.csrf_exempt_cgi_bin, name="cgi-bin"),
]
