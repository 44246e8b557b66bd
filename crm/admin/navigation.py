"""The console's sidebar: navigation by job (UNFOLD["SIDEBAR"]["navigation"] points at `sidebar_navigation`).

Each item is shown only to a user allowed to see what it opens: a model's list needs the model's view (or change)
permission, so the groups' permissions (admin, marketing, store_manager, ...) decide the menu. A section with no item
left is dropped. A model that is not registered (the simulator's, when it is not mounted) is left out.

To add a screen to the console, add one line to its section in `sections()`:
- a model's list: `_model(_("Title"), "icon", "app_label", "model_name")`;
- a console page (crm/console/, mounted at /admin/console/): `_page(_("Title"), "icon", "console:url-name",
  "app_label.permission_codename")` — the permission the page itself checks.
Icons are Material Symbols names (bundled with unfold).
"""

from __future__ import annotations

from collections.abc import Callable

from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext_lazy as _


def model_permission(app_label: str, model_name: str) -> Callable[[HttpRequest], bool]:
    """A permission callback: the user may view (or change) this model, as the admin's own list view requires."""

    def allowed(request: HttpRequest) -> bool:
        user = request.user
        return user.is_active and user.is_staff and (
            user.has_perm(f"{app_label}.view_{model_name}") or user.has_perm(f"{app_label}.change_{model_name}")
        )

    return allowed


def perm_permission(*perms: str) -> Callable[[HttpRequest], bool]:
    """A permission callback: the user holds every one of `perms` (none: any active staff user)."""

    def allowed(request: HttpRequest) -> bool:
        user = request.user
        return user.is_active and user.is_staff and all(user.has_perm(p) for p in perms)

    return allowed


def _model(title, icon: str, app_label: str, model_name: str) -> dict | None:
    try:
        model = apps.get_model(app_label, model_name)
    except LookupError:
        return None
    if not admin.site.is_registered(model):
        return None
    return {
        "title": title,
        "icon": icon,
        "link": reverse(f"admin:{app_label}_{model_name}_changelist"),
        "permission": model_permission(app_label, model_name),
    }


def _page(title, icon: str, url_name: str, *perms: str) -> dict | None:
    try:
        link = reverse(url_name)
    except NoReverseMatch:  # a page not written yet, or not mounted here
        return None
    return {"title": title, "icon": icon, "link": link, "permission": perm_permission(*perms)}


def _approvals() -> dict | None:
    """Red packets › Approvals: the pools over the threshold that wait for a second admin (the pool list, filtered)."""
    item = _model(_("Approvals"), "approval", "crm", "redpacketpool")
    if item is not None:
        item["link"] += "?approval=awaiting"
        item["permission"] = perm_permission("crm.approve_redpacketpool")
    return item


def _failed_callbacks() -> dict | None:
    """System › Failed callbacks: events whose effect failed, with payload and error, replayable (the list filtered)."""
    item = _model(_("Failed callbacks"), "sms_failed", "crm", "callbackevent")
    if item is not None:
        item["link"] += "?status__exact=failed"
    return item


def _simulator() -> dict | None:
    """System › Simulator: the simulated WeCom world's models, only when the simulator is mounted."""
    if not settings.WECOM_SIM_ENABLED or not apps.is_installed("wecom_sim"):
        return None
    items = [
        _model(model._meta.verbose_name_plural.capitalize(), "", "wecom_sim", model._meta.model_name)
        for model in apps.get_app_config("wecom_sim").get_models()
    ]
    items = [item for item in items if item]
    if not items:
        return None
    return {
        "title": _("Simulator"),
        "icon": "science",
        "link": reverse("admin:app_list", kwargs={"app_label": "wecom_sim"}),
        "permission": lambda request: any(item["permission"](request) for item in items),
        "items": items,
    }


def sections() -> list[tuple[str, list[dict | None]]]:
    return [
        (_("Dashboard"), [
            _page(_("Dashboard"), "dashboard", "admin:index"),
        ]),
        (_("Contacts"), [
            _model(_("Contacts"), "person", "crm", "contact"),
            _model(_("Segments"), "filter_alt", "crm", "segment"),
            _model(_("Tags"), "sell", "crm", "tag"),
            _model(_("Tag groups"), "label", "crm", "taggroup"),
            _model(_("Contact tags"), "bookmarks", "crm", "contacttag"),
            _model(_("Follow relations"), "handshake", "crm", "followrelation"),
            _model(_("Timeline"), "history", "crm", "contactevent"),
            _model(_("Consent"), "verified_user", "crm", "consentrecord"),
            _model(_("Welcome messages"), "waving_hand", "crm", "welcomemessage"),
            _model(_("Contact syncs"), "sync", "crm", "syncrun"),
            _model(_("Erasures"), "delete_forever", "crm", "erasuretombstone"),
        ]),
        (_("Channels"), [
            _model(_("Channels"), "qr_code_2", "crm", "channel"),
        ]),
        (_("Groups"), [
            _model(_("Customer groups"), "groups", "crm", "customergroup"),
            _model(_("Group members"), "group", "crm", "groupmember"),
            _model(_("Group join QR codes"), "qr_code", "crm", "groupjoinway"),
            _model(_("VIP invitations"), "workspace_premium", "crm", "vipinvite"),
        ]),
        (_("Campaigns"), [
            _model(_("Campaigns"), "campaign", "crm", "campaign"),
            _page(_("New campaign"), "add_circle", "admin:crm_campaign_add", "crm.add_campaign"),
            _model(_("Campaign runs"), "event_repeat", "crm", "campaignrun"),
            _model(_("Mass messages"), "forward_to_inbox", "crm", "massmessage"),
            _model(_("Recipients"), "mark_email_read", "crm", "campaignrecipient"),
            _model(_("Group recipients"), "groups", "crm", "campaigngrouprecipient"),
            _model(_("Lucky draws"), "casino", "crm", "luckydraw"),
            _model(_("Lucky draw entries"), "confirmation_number", "crm", "luckydrawentry"),
            _model(_("Group lucky draws"), "verified", "crm", "groupdraw"),
        ]),
        (_("Red packets"), [
            _model(_("Red-packet pools"), "redeem", "crm", "redpacketpool"),
            _approvals(),
            _model(_("Group red packets"), "groups", "crm", "grouppacket"),
            _model(_("Claims"), "paid", "crm", "redpacketclaim"),
            _model(_("Refunds"), "currency_exchange", "crm", "redpacketrefund"),
        ]),
        (_("Loyalty"), [
            _model(_("Cards"), "card_membership", "loyalty", "card"),
            _model(_("Points ledger"), "receipt_long", "loyalty", "pointsledger"),
            _model(_("Purchases"), "shopping_bag", "loyalty", "purchase"),
            _model(_("Purchase lines"), "list", "loyalty", "purchaseline"),
            _model(_("Products"), "inventory_2", "loyalty", "product"),
            _model(_("Tiers"), "military_tech", "loyalty", "tier"),
            _model(_("Tier changes"), "trending_up", "loyalty", "tierchange"),
            _model(_("Rewards"), "featured_seasonal_and_gifts", "loyalty", "reward"),
            _model(_("Redemptions"), "shopping_cart_checkout", "loyalty", "redemption"),
            _model(_("Journey steps"), "route", "loyalty", "journeystep"),
            _model(_("Stores"), "storefront", "loyalty", "store"),
        ]),
        (_("Data sources"), [
            _model(_("Data sources"), "database", "crm", "datasource"),
            _model(_("Source events"), "timeline", "crm", "sourceevent"),
            _model(_("Order lines"), "receipt", "crm", "sourceorderline"),
            _model(_("Aggregates"), "bar_chart", "crm", "sourceaggregate"),
        ]),
        (_("Staff"), [
            _model(_("Staff"), "badge", "crm", "staff"),
            _page(_("Handover wizard"), "move_up", "console:handover", "crm.handover_staff"),
            _model(_("Handovers"), "swap_horiz", "crm", "handover"),
            _model(_("Handover items"), "person_pin", "crm", "handoveritem"),
            _model(_("Group handover items"), "group_work", "crm", "grouphandoveritem"),
            _model(_("Console users"), "manage_accounts", "auth", "user"),
            _model(_("Roles"), "admin_panel_settings", "auth", "group"),
            _model(_("API tokens"), "key", "authtoken", "tokenproxy"),
            _model(_("Sign-in lockouts"), "lock_person", "axes", "accessattempt"),
            _model(_("Sign-ins"), "login", "axes", "accesslog"),
        ]),
        (_("System"), [
            _page(_("Health and queues"), "monitor_heart", "console:system", "crm.view_callbackevent"),
            _model(_("Audit log"), "policy", "auditlog", "logentry"),
            _model(_("Callback events"), "webhook", "crm", "callbackevent"),
            _failed_callbacks(),
            _model(_("Beat schedules"), "schedule", "django_celery_beat", "periodictask"),
            _model(_("Intervals"), "timer", "django_celery_beat", "intervalschedule"),
            _model(_("Crontabs"), "calendar_month", "django_celery_beat", "crontabschedule"),
            _model(_("Clocked"), "alarm", "django_celery_beat", "clockedschedule"),
            _simulator(),
        ]),
    ]


def sidebar_navigation(request: HttpRequest) -> list[dict]:
    """The sections this user may use, each with only the items they may open (unfold checks `permission` again)."""
    navigation = []
    for title, items in sections():
        allowed = [item for item in items if item and item["permission"](request)]
        if allowed:
            navigation.append({"title": title, "separator": True, "collapsible": False, "items": allowed})
    return navigation
