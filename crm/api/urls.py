"""CRM HTTP routes: the staff API under /api/, the WeCom callback, customer-facing pages under /m/."""

from crm.api import (
    callbacks,
    campaigns,
    contacts,
    customer_pages,
    draws,
    erasure,
    fission,
    group_packets,
    runs,
    segments,
)
from crm.api import tags as tag_api

urlpatterns = [
    *callbacks.urlpatterns,
    *contacts.urlpatterns,
    *erasure.urlpatterns,
    *campaigns.urlpatterns,
    *fission.urlpatterns,
    *runs.urlpatterns,
    *segments.urlpatterns,
    *tag_api.urlpatterns,
    *group_packets.urlpatterns,
    *customer_pages.urlpatterns,
    *draws.urlpatterns,
]
