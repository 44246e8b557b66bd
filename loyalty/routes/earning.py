"""Routes for the loyalty earning area."""

from loyalty.api_earning import urlpatterns as api_urlpatterns

urlpatterns: list = [*api_urlpatterns]
