"""Loyalty routes (included at the site root): the till and staff API under api/loyalty/, the card page under m/."""

from loyalty import api, pages

app_name = "loyalty"
urlpatterns = [*api.urlpatterns, *pages.urlpatterns]
