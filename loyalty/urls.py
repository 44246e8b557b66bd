"""Loyalty routes (included at the site root): the till and staff API under api/loyalty/, the card page under m/."""

from loyalty import api, pages
from loyalty.routes import coupons, earning, lots, tiers, till

app_name = "loyalty"
urlpatterns = [
    *api.urlpatterns,
    *pages.urlpatterns,
    *earning.urlpatterns,
    *lots.urlpatterns,
    *tiers.urlpatterns,
    *coupons.urlpatterns,
    *till.urlpatterns,
]
