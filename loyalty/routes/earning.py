"""Routes for the loyalty earning area."""

urlpatterns: list = []
