from django.urls import path  # noqa: F401

app_name = "wecom_sim"
urlpatterns: list = []
