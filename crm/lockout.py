"""The console's lockout page (django-axes' AXES_LOCKOUT_CALLABLE): 429 with Retry-After, in the staff's language."""

from __future__ import annotations

from axes.helpers import get_cool_off, get_failure_limit
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def lockout_response(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    cool_off = get_cool_off(request)
    minutes = max(1, round(cool_off.total_seconds() / 60)) if cool_off else None
    response = render(request, "admin/locked_out.html",
                      {"failure_limit": get_failure_limit(request, credentials), "minutes": minutes}, status=429)
    if cool_off:
        response["Retry-After"] = str(int(cool_off.total_seconds()))
    return response
