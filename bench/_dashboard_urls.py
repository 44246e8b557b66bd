"""URLconf for bench/dashboard_1m.py: the project's own URLs plus the baseline page, a plain count(*) behind the
same admin login check, rendered in the same run by the same client."""

from django.contrib import admin
from django.db import connection
from django.http import HttpResponse
from django.urls import path

from crm.urls import urlpatterns as crm_urlpatterns


def count_page(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM crm_contact")
        (n,) = cursor.fetchone()
    return HttpResponse(f"<html><body><p>{n} contacts</p></body></html>")


urlpatterns = [path("bench/count/", admin.site.admin_view(count_page)), *crm_urlpatterns]
