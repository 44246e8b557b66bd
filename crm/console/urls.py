"""URLs of the console's product pages, mounted under /admin/console/ (see crm/urls.py)."""

from django.urls import path  # noqa: F401

app_name = "console"

urlpatterns: list = []
