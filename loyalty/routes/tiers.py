"""Routes for the loyalty tiers area."""

urlpatterns: list = []
