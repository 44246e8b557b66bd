"""Roles (issue 10.5): the groups and their permissions, the demo users, and the matrix of role x API endpoint and
role x console page. Allowed requests get their real answer (200, or 400/404 for a body or id made to be
refused by the view itself, which proves the permission check let it through); refused ones get 403, and the
console sends a non-staff user to the login page."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.test import RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from rest_framework.views import APIView

from crm.admin.navigation import sidebar_navigation
from crm.models import Campaign, Channel, Contact, Handover, Staff
from crm.services.roles import (
    ADMIN,
    CASHIER,
    MARKETING,
    ROLE_PERMISSIONS,
    ROLES,
    STORE_MANAGER,
    roles_ensure,
    roles_missing_permissions,
    user_role_set,
)
from loyalty.models import Purchase
from loyalty.services import card_get_or_create, store_upsert, tiers_ensure_defaults
from loyalty.services.store_staff import demo_users_ensure

pytestmark = pytest.mark.django_db

NOBODY = "staff_without_role"
A, M, SM, C = ADMIN, MARKETING, STORE_MANAGER, CASHIER


# --- The groups --------------------------------------------------------------------------------------------------


def test_the_migration_made_every_role_with_its_permissions():
    groups = {g.name: set(g.permissions.values_list("content_type__app_label", "codename")) for g in
              Group.objects.filter(name__in=ROLES).prefetch_related("permissions")}
    assert set(groups) == set(ROLES)
    assert roles_missing_permissions() == []  # no typo in a role's list
    for role in (MARKETING, STORE_MANAGER, CASHIER):
        assert {f"{a}.{c}" for a, c in groups[role]} == set(ROLE_PERMISSIONS[role])
    assert ("crm", "erase_contact") in groups[ADMIN] and ("loyalty", "use_till") in groups[ADMIN]


def test_roles_ensure_is_idempotent_and_undoes_hand_edits():
    marketing = Group.objects.get(name=MARKETING)
    marketing.permissions.clear()
    first = roles_ensure()
    assert roles_ensure() == first
    assert marketing.permissions.count() == len(ROLE_PERMISSIONS[MARKETING])
    assert Group.objects.filter(name__in=ROLES).count() == len(ROLES)


def test_only_admin_holds_erase_and_handover_marketing_holds_export():
    holders = {perm: {r for r, perms in ROLE_PERMISSIONS.items() if perms == "__all__" or perm in perms}
               for perm in ("crm.export_contact", "crm.erase_contact", "crm.handover_staff", "loyalty.use_till",
                            "loyalty.all_stores")}
    assert holders == {
        "crm.export_contact": {ADMIN, MARKETING},
        "crm.erase_contact": {ADMIN},
        "crm.handover_staff": {ADMIN},
        "loyalty.use_till": {ADMIN, CASHIER},
        "loyalty.all_stores": {ADMIN},
    }


def test_demo_users_one_per_role_idempotent_and_keeping_a_changed_password():
    users = demo_users_ensure()
    assert {name: list(u.groups.values_list("name", flat=True)) for name, u in users.items()} == {
        "admin": [ADMIN], "marketing": [MARKETING], "manager": [STORE_MANAGER], "cashier": [CASHIER],
    }
    assert [u.username for u in users.values() if u.is_staff] == ["admin", "marketing", "manager"]
    assert users["admin"].is_superuser and not users["marketing"].is_superuser
    assert list(users["manager"].loyalty_stores.values_list("code", flat=True)) == ["SH001"]
    assert list(users["cashier"].loyalty_stores.values_list("code", flat=True)) == ["SH001"]
    assert Token.objects.filter(user=users["cashier"]).exists()
    assert users["marketing"].check_password("marketing") and users["manager"].check_password("manager")

    users["marketing"].set_password("changed-by-its-owner")
    users["marketing"].save()
    again = demo_users_ensure()
    assert {n: u.pk for n, u in again.items()} == {n: u.pk for n, u in users.items()}
    assert again["marketing"].check_password("changed-by-its-owner")
    assert again["manager"].loyalty_stores.count() == 1


def test_user_role_set_moves_between_roles_and_refuses_an_unknown_one(django_user_model):
    from crm.errors import ApplicationError

    user = django_user_model.objects.create_user("mover", password="pw")
    user_role_set(user, MARKETING)
    assert user.is_staff and list(user.groups.values_list("name", flat=True)) == [MARKETING]
    user_role_set(user, CASHIER)
    user.refresh_from_db()
    assert not user.is_staff and list(user.groups.values_list("name", flat=True)) == [CASHIER]
    with pytest.raises(ApplicationError) as refused:
        user_role_set(user, "owner")
    assert refused.value.field == "role"


# --- The world the matrix runs in --------------------------------------------------------------------------------


@pytest.fixture
def world(django_user_model):
    tiers_ensure_defaults()
    mine = store_upsert(code="store-sh-001", name="Shanghai")
    other = store_upsert(code="store-bj-001", name="Beijing")
    users = {}
    for role in ROLES:
        user = django_user_model.objects.create_user(f"u-{role}", password="pw")
        user_role_set(user, role)
        if role in (STORE_MANAGER, CASHIER):
            mine.members.add(user)
        users[role] = django_user_model.objects.get(pk=user.pk)
    users[NOBODY] = django_user_model.objects.create_user("u-nobody", password="pw", is_staff=True)
    contact = Contact.objects.create(external_userid="wmMATRIX", name="Matrix")
    card = card_get_or_create(contact.pk)
    Purchase.objects.create(store=mine, receipt_id="R-1", card=card, amount_fen=100)
    far_card = card_get_or_create(Contact.objects.create(external_userid="wmFAR", name="Far").pk)
    Purchase.objects.create(store=other, receipt_id="R-2", card=far_card, amount_fen=100)
    leaver = Staff.objects.create(userid="leaver", name="Leaver")
    ids = {
        "contact": contact.pk,
        "channel": Channel.objects.create(name="Shanghai", state="store-sh-001").pk,
        "campaign": Campaign.objects.create(name="Spring", text="Hello").pk,
        "handover": Handover.objects.create(kind="resigned", handover_staff=leaver).pk,
        "card": card.pk,
        "far_card": far_card.pk,
    }
    return {"users": users, "ids": ids, "mine": mine, "other": other}


MISSING = 999_999
CSV = "text/csv"

# (method, path, body, status when allowed, roles allowed). Bodies and ids that the view itself refuses (400/404)
# keep allowed calls from reaching WeCom; the status proves the permission check let them through.
ENDPOINTS = [
    ("get", "/api/contacts/", None, 200, {A, M}),
    ("get", "/api/contacts/export.csv", None, 200, {A, M}),
    ("post", "/api/contacts/bulk-tag/", {}, 400, {A, M}),
    ("get", "/api/contacts/{contact}/", None, 200, {A, M}),
    ("post", "/api/contacts/{contact}/consent/", {}, 400, {A, M}),
    ("get", "/api/contacts/{contact}/export/", None, 200, {A, M}),
    ("post", "/api/sources/unknown/ingest/", {}, 400, {A}),
    ("post", "/api/sources/unknown/import/", {}, 400, {A}),
    ("post", "/api/handovers/", {}, 400, {A}),
    ("get", "/api/handovers/{handover}/", None, 200, {A}),
    ("post", "/api/channels/", {}, 400, {A, M}),
    ("get", "/api/channels/{channel}/stats/?start=2026-01-01&end=2026-01-02", None, 200, {A, M}),
    ("get", "/api/campaigns/", None, 200, {A, M}),
    ("post", "/api/campaigns/", {}, 400, {A, M}),
    ("get", "/api/campaigns/{campaign}/", None, 200, {A, M}),
    ("patch", f"/api/campaigns/{MISSING}/", {}, 404, {A, M}),
    ("delete", f"/api/campaigns/{MISSING}/", None, 404, {A, M}),
    ("post", "/api/campaigns/{campaign}/schedule", {}, 400, {A, M}),
    ("post", f"/api/campaigns/{MISSING}/launch", {}, 404, {A, M}),
    ("post", f"/api/campaigns/{MISSING}/cancel", {}, 404, {A, M}),
    ("post", f"/api/campaigns/{MISSING}/remind", {}, 404, {A, M}),
    ("get", "/api/campaigns/{campaign}/stats", None, 200, {A, M}),
    ("post", "/api/campaigns/{campaign}/red-packet", {}, 400, {A, M}),
    ("post", "/api/campaigns/{campaign}/lucky-draw", {}, 400, {A, M}),
    ("get", "/api/redpacket-pools/", None, 200, {A, M}),
    ("get", f"/api/redpacket-pools/{MISSING}/", None, 404, {A, M}),
    ("get", f"/api/redpacket-pools/{MISSING}/reconciliation", None, 404, {A, M}),
    ("post", f"/api/redpacket-pools/{MISSING}/refund", {}, 404, {A, M}),
    ("post", "/api/loyalty/scans", {}, 400, {A, C}),
    ("post", "/api/loyalty/redemptions", {}, 400, {A, C}),
    ("get", "/api/loyalty/cards", None, 200, {A, SM}),
    ("get", "/api/loyalty/cards/{card}", None, 200, {A, SM}),
    ("post", "/api/loyalty/cards/{card}/adjust", {}, 400, {A}),
    ("get", "/api/loyalty/tiers", None, 200, {A, M, SM}),  # marketing chooses tiers for rewards and journeys
    ("get", "/api/loyalty/stores", None, 200, {A, SM, C}),
    ("get", "/api/loyalty/rewards", None, 200, {A, M, SM, C}),
    # Rewards and coupons (issue 12.5): marketing keeps the catalogue, grants coupons, sets a campaign's coupon and
    # journey steps; the till and store managers do none of it.
    ("get", "/api/loyalty/catalogue", None, 200, {A, M, SM}),
    ("post", "/api/loyalty/catalogue", {}, 400, {A, M}),
    ("put", f"/api/loyalty/catalogue/{MISSING}", {}, 400, {A, M}),
    ("post", "/api/loyalty/coupons/grant", {}, 400, {A, M}),
    ("get", "/api/loyalty/campaigns/{campaign}/coupon", None, 200, {A, M}),
    ("put", "/api/loyalty/campaigns/{campaign}/coupon", {}, 400, {A, M}),
    ("get", "/api/loyalty/journeys", None, 200, {A, M}),
    ("post", "/api/loyalty/journeys", {}, 400, {A, M}),
    ("put", f"/api/loyalty/journeys/{MISSING}", {}, 400, {A, M}),
    ("patch", "/api/contacts/{contact}/", {"birthday": "2999-01-01"}, 400, {A, M}),
    ("post", "/api/contacts/{contact}/erase/", {"reason": "role matrix"}, 200, {A}),  # last: it erases the contact
]


def _client(user) -> APIClient:
    client = APIClient()
    if user.is_staff:
        client.force_login(user)  # the console's session
    else:
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")  # a till
    return client


@pytest.mark.parametrize("role", [*ROLES, NOBODY])
def test_api_matrix(world, role):
    client = _client(world["users"][role])
    got, expected = {}, {}
    for method, path, body, allowed_status, allowed in ENDPOINTS:
        url = path.format(**world["ids"])
        kwargs = {"format": "json"} if body is not None else {}
        response = getattr(client, method)(url, body, **kwargs) if body is not None else getattr(client, method)(url)
        got[f"{method.upper()} {path}"] = response.status_code
        expected[f"{method.upper()} {path}"] = allowed_status if role in allowed else 403
        if response.status_code == 403 and role not in allowed:
            assert response.json()["error"]["code"] == "permission_denied"
    assert got == expected


def test_every_api_view_names_what_it_needs():
    """Every view under /api/ says which permissions each of its methods needs, or is a till view: none relies on
    the default (any staff user), so a view added later cannot slip through to every role."""
    from crm.api.permissions import HasStaffPerms, IsTillUser

    def walk(patterns, prefix=""):
        for p in patterns:
            if isinstance(p, URLResolver):
                yield from walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                yield prefix + str(p.pattern), getattr(p.callback, "view_class", None)

    unguarded, checked = [], 0
    for route, view in walk(get_resolver().url_patterns):
        if not route.startswith("api/") or route.startswith(("api/schema", "api/docs")):
            continue
        assert view is not None and issubclass(view, APIView), route
        checked += 1
        classes = view.permission_classes
        if list(classes) == [IsTillUser]:
            continue
        staff = any(c is HasStaffPerms or not isinstance(c, type) for c in classes)  # `A | B` is an instance
        methods = {m.upper() for m in view.http_method_names if m not in ("options", "head") and hasattr(view, m)}
        missing = methods - set(getattr(view, "required_perms", {}))
        if not staff or missing:
            unguarded.append(f"{route} {sorted(missing)}")
    assert checked >= 30 and unguarded == []


# --- Store scoping -----------------------------------------------------------------------------------------------


def test_store_manager_sees_only_their_stores_cards_and_purchases(world, client):
    manager = _client(world["users"][STORE_MANAGER])
    listed = [c["id"] for c in manager.get("/api/loyalty/cards").json()["results"]]
    assert listed == [world["ids"]["card"]]
    assert manager.get(f"/api/loyalty/cards/{world['ids']['far_card']}").status_code == 404
    assert [s["code"] for s in manager.get("/api/loyalty/stores").json()] == ["store-sh-001"]

    admin = _client(world["users"][ADMIN])
    assert len(admin.get("/api/loyalty/cards").json()["results"]) == 2

    client.force_login(world["users"][STORE_MANAGER])
    page = client.get("/admin/loyalty/purchase/")
    assert page.status_code == 200
    assert page.context["cl"].result_count == 1 and "R-1" in page.content.decode()
    far = Purchase.objects.get(receipt_id="R-2")
    assert client.get(f"/admin/loyalty/purchase/{far.pk}/change/").status_code in (302, 404)


# --- The console --------------------------------------------------------------------------------------------------

CHANGELISTS = {
    "/admin/crm/contact/": {A, M},
    "/admin/crm/channel/": {A, M},
    "/admin/crm/customergroup/": {A, M},
    "/admin/crm/campaign/": {A, M},
    "/admin/crm/redpacketpool/": {A, M},
    "/admin/crm/tag/": {A, M},
    "/admin/crm/handover/": {A},
    "/admin/crm/datasource/": {A},
    "/admin/crm/callbackevent/": {A},
    "/admin/auth/user/": {A},
    "/admin/loyalty/card/": {A, SM},
    "/admin/loyalty/purchase/": {A, SM},
    "/admin/loyalty/store/": {A, SM},
    "/admin/loyalty/reward/": {A, M, SM},
    "/admin/loyalty/reward/add/": {A, M},
    "/admin/loyalty/coupon/": {A, M},
    "/admin/loyalty/journeystep/": {A, M},
    "/admin/loyalty/journeystep/add/": {A, M},
    "/admin/loyalty/journeygrant/": {A, M},
    "/admin/auditlog/logentry/": {A},
}


@pytest.mark.parametrize("role", [*ROLES, NOBODY])
def test_console_matrix(world, client, role):
    client.force_login(world["users"][role])
    index = client.get("/admin/")
    if role == CASHIER:  # no console: every page sends the till user to the login page
        assert index.status_code == 302 and "/admin/login/" in index["Location"]
        assert all(client.get(url).status_code == 302 for url in CHANGELISTS)
        return
    assert index.status_code == 200
    got = {url: client.get(url).status_code for url in CHANGELISTS}
    assert got == {url: 200 if role in allowed else 403 for url, allowed in CHANGELISTS.items()}


MENUS = {
    ADMIN: {"Dashboard", "Contacts", "Channels", "Groups", "Campaigns", "Red packets", "Loyalty", "Data sources",
            "Staff", "System"},
    MARKETING: {"Dashboard", "Contacts", "Channels", "Groups", "Campaigns", "Red packets", "Loyalty", "Staff"},
    STORE_MANAGER: {"Dashboard", "Loyalty"},
    NOBODY: {"Dashboard"},
}


@pytest.mark.parametrize("role", [ADMIN, MARKETING, STORE_MANAGER, NOBODY])
def test_each_role_sees_only_its_menu(world, role):
    request = RequestFactory().get("/admin/")
    request.user = world["users"][role]
    menu = {str(s["title"]): {str(i["title"]) for i in s["items"]} for s in sidebar_navigation(request)}
    assert set(menu) == MENUS[role]
    if role == MARKETING:
        assert menu["Staff"] == {"Staff"}  # to pick a channel's staff; no handover
        assert menu["Loyalty"] == {"Tiers", "Rewards", "Journey steps"}  # no cards, ledger, purchases or stores
        assert "Contact syncs" not in menu["Contacts"]
