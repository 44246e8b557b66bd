"""Routes for the loyalty till area."""

urlpatterns: list = []
