"""URLs of the console's product pages, mounted under /admin/console/ (see crm/urls.py)."""

from django.contrib import admin
from django.urls import path

from crm.console.system import system_page

app_name = "console"

urlpatterns: list = [
    path("system/", admin.site.admin_view(system_page), name="system"),
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
]
