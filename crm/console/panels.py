"""Panels other apps add to the contact page, so the page can show them without `crm` importing those apps.

`crm` never imports `loyalty` (an import-linter contract). The contact page is crm's, yet it must show the loyalty
card and purchases; so loyalty registers a panel here from its AppConfig.ready(), and the page renders whatever
is registered. A panel is a template plus a function giving that template its context for one contact."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils.safestring import SafeString

from crm.models.contacts import Contact


@dataclass(frozen=True)
class ContactPanel:
    """One section of the contact page: shown to users holding every permission in `permissions`."""

    key: str
    title: str  # a lazy translation
    template: str
    context: Callable[[Contact, HttpRequest], dict]
    permissions: tuple[str, ...] = ()
    order: int = 100
    icon: str = ""  # a Material Symbols name, as the page's own cards use


@dataclass(frozen=True)
class RenderedPanel:
    key: str
    title: str
    html: SafeString
    icon: str = ""


_contact_panels: dict[str, ContactPanel] = {}


def register_contact_panel(panel: ContactPanel) -> None:
    """Add (or replace, by key: ready() may run twice in tests) a panel on the contact page."""
    _contact_panels[panel.key] = panel


def unregister_contact_panel(key: str) -> None:
    _contact_panels.pop(key, None)


def contact_panels() -> list[ContactPanel]:
    return sorted(_contact_panels.values(), key=lambda p: (p.order, p.key))


def contact_panels_render(contact: Contact, request: HttpRequest) -> list[RenderedPanel]:
    """The panels this user may see, rendered for this contact."""
    rendered = []
    for panel in contact_panels():
        if not request.user.has_perms(panel.permissions):
            continue
        context = {"contact": contact, "panel": panel, **panel.context(contact, request)}
        html = render_to_string(panel.template, context, request)
        rendered.append(RenderedPanel(panel.key, panel.title, html, panel.icon))
    return rendered
