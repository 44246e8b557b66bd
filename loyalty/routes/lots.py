"""Routes for the loyalty lots area: till returns, the returns list and a card's lots."""

from django.urls import path

from loyalty import api_lots

urlpatterns = [
    path("api/loyalty/returns", api_lots.ReturnCreateApi.as_view(), name="return-create"),
    path("api/loyalty/returns/list", api_lots.ReturnListApi.as_view(), name="return-list"),
    path("api/loyalty/cards/<int:card_id>/lots", api_lots.CardLotsApi.as_view(), name="card-lots"),
]
