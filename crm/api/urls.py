"""CRM HTTP routes: the staff API under /api/, the WeCom callback, customer-facing pages under /m/."""

from django.urls import path  # noqa: F401

urlpatterns: list = []
