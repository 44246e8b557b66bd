"""Routes for the loyalty tiers area."""

from loyalty.api_tiers import urlpatterns as api_urlpatterns

urlpatterns: list = [*api_urlpatterns]
