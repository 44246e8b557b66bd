"""Routes for the loyalty coupons area."""

urlpatterns: list = []
