"""Routes for the loyalty lots area."""

urlpatterns: list = []
