"""Routes for the loyalty coupons area: the catalogue / grant / till-redeem API and the points mall pages."""

from loyalty.api_coupons import urlpatterns as api_urlpatterns
from loyalty.pages_mall import urlpatterns as mall_urlpatterns

urlpatterns: list = [*api_urlpatterns, *mall_urlpatterns]
