"""What every console page shares: the admin's context (unfold's sidebar, colours, user links), links into the
admin that may not be registered, and money shown in yuan."""

from __future__ import annotations

from functools import wraps

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.paginator import Page, Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse

PAGE_SIZE = 25


def console_render(request: HttpRequest, template: str, context: dict, *, title: str) -> HttpResponse:
    """Render a product page inside the console's layout (templates extend "admin/base.html")."""
    return render(request, template, {**admin.site.each_context(request), "title": title, **context})


def admin_url(name: str, *args) -> str | None:
    """The admin URL, or None when that model is not in the admin (its section then shows no link)."""
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return None


def page_of(request: HttpRequest, items, *, param: str = "page", per_page: int = PAGE_SIZE) -> Page:
    """One page of `items`; a page number that is not a number or out of range gives the nearest page, not a 404."""
    return Paginator(items, per_page).get_page(request.GET.get(param))


def yuan(fen: int | None) -> str:
    """Integer fen as yuan for display: 12345 -> "¥123.45"."""
    fen = int(fen or 0)
    sign = "-" if fen < 0 else ""
    return f"{sign}¥{abs(fen) // 100:,}.{abs(fen) % 100:02d}"


def permission_required(perm: str):
    """A console view for holders of `perm` (403 otherwise; the admin_view around it has already asked for a
    staff login)."""

    def decorator(view):
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.has_perm(perm):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
