"""Routes: see crm/api/urls.py."""

urlpatterns: list = []
