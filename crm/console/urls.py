"""URLs of the console's product pages, mounted under /admin/console/ (see crm/urls.py)."""

from django.contrib import admin
from django.urls import path

from crm.console import channel, contact, erasure, pool
from crm.console.system import system_page

app_name = "console"

urlpatterns: list = [
    path("system/", admin.site.admin_view(system_page), name="system"),
]

# Contact, channel and red-packet pool pages (crm/console/contact.py, channel.py, pool.py).
urlpatterns += [
    path("contacts/<int:contact_id>/", admin.site.admin_view(contact.contact_page), name="contact"),
    path("contacts/<int:contact_id>/birthday/", admin.site.admin_view(contact.contact_birthday_view),
         name="contact-birthday"),
    path("contacts/<int:contact_id>/tags/add/", admin.site.admin_view(contact.contact_tag_add_view),
         name="contact-tag-add"),
    path("contacts/<int:contact_id>/tags/<int:tag_id>/remove/", admin.site.admin_view(contact.contact_tag_remove_view),
         name="contact-tag-remove"),
    path("contacts/<int:contact_id>/export.json", admin.site.admin_view(erasure.contact_export_download),
         name="contact-export"),
    path("contacts/<int:contact_id>/erase/", admin.site.admin_view(erasure.contact_erase_view), name="contact-erase"),
    path("channels/<int:channel_id>/", admin.site.admin_view(channel.channel_page), name="channel"),
    path("channels/<int:channel_id>/qr.<str:fmt>", admin.site.admin_view(channel.channel_qr_download),
         name="channel-qr"),
    path("pools/<int:pool_id>/", admin.site.admin_view(pool.pool_page), name="pool"),
]

# Handover wizard and campaign page (crm/console/handover.py, campaign.py).
from crm.console import campaign, handover  # noqa: E402

urlpatterns += [
    path("handover/", admin.site.admin_view(handover.handover_wizard), name="handover"),
    path("handover/<int:handover_id>/", admin.site.admin_view(handover.handover_detail), name="handover-detail"),
    path("handover/<int:handover_id>/progress/", admin.site.admin_view(handover.handover_progress_fragment),
         name="handover-progress"),
    path("handover/<int:handover_id>/check/", admin.site.admin_view(handover.handover_check), name="handover-check"),
    path("campaigns/<int:campaign_id>/", admin.site.admin_view(campaign.campaign_detail), name="campaign-detail"),
    path("campaigns/<int:campaign_id>/progress/", admin.site.admin_view(campaign.campaign_progress_fragment),
         name="campaign-progress"),
    path("campaigns/<int:campaign_id>/remind/", admin.site.admin_view(campaign.campaign_remind_view),
         name="campaign-remind"),
    path("campaigns/<int:campaign_id>/cancel/", admin.site.admin_view(campaign.campaign_cancel_view),
         name="campaign-cancel"),
    # Issue 11's campaign screens: compose preview, send now, pause/resume, runs (crm/console/campaign.py).
    path("campaigns/preview/", admin.site.admin_view(campaign.campaign_compose_preview), name="campaign-preview"),
    path("campaigns/<int:campaign_id>/image/", admin.site.admin_view(campaign.campaign_image), name="campaign-image"),
    path("campaigns/<int:campaign_id>/launch/", admin.site.admin_view(campaign.campaign_launch_view),
         name="campaign-launch"),
    path("campaigns/<int:campaign_id>/pause/", admin.site.admin_view(campaign.campaign_pause_view),
         name="campaign-pause"),
    path("campaigns/<int:campaign_id>/resume/", admin.site.admin_view(campaign.campaign_resume_view),
         name="campaign-resume"),
    path("campaigns/<int:campaign_id>/runs/<int:run_id>/", admin.site.admin_view(campaign.campaign_run_detail),
         name="campaign-run"),
    path("campaigns/<int:campaign_id>/runs/<int:run_id>/progress/",
         admin.site.admin_view(campaign.campaign_run_progress_fragment), name="campaign-run-progress"),
    path("campaigns/<int:campaign_id>/runs/<int:run_id>/<str:action>/",
         admin.site.admin_view(campaign.campaign_run_action), name="campaign-run-action"),
]

# Segment builder (crm/console/segment.py); the list of segments is the admin's changelist (crm/admin/segments.py).
from crm.console import segment  # noqa: E402

urlpatterns += [
    path("segments/new/", admin.site.admin_view(segment.segment_new), name="segment-new"),
    path("segments/<int:segment_id>/", admin.site.admin_view(segment.segment_edit), name="segment-edit"),
    path("segments/<int:segment_id>/delete/", admin.site.admin_view(segment.segment_delete_view),
         name="segment-delete"),
]
