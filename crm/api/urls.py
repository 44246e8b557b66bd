"""CRM HTTP routes: the staff API under /api/, the WeCom callback, customer-facing pages under /m/."""

from crm.api import callbacks, campaigns, contacts, customer_pages, draws, runs, segments

urlpatterns = [
    *callbacks.urlpatterns,
    *contacts.urlpatterns,
    *campaigns.urlpatterns,
    *runs.urlpatterns,
    *segments.urlpatterns,
    *customer_pages.urlpatterns,
    *draws.urlpatterns,
]
