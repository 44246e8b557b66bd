"""Roles: Django groups whose permissions decide each staff member's menu, objects and API endpoints.

The permission sets are written here, in code, and `roles_ensure` makes the groups match them exactly (a data
migration runs it, and so does every `migrate`/flush through post_migrate). Permission names are strings
("app_label.codename"), so a role can span apps without crm importing them.

- admin: everything;
- marketing: contacts, tags, consent, channels, groups, campaigns, red packets, segments (a campaign's audience),
  and the contact export; loyalty's earning rules, rewards catalogue, coupon grants, campaign coupons and journey
  steps; no staff handover, no raw data sources, no erase;
- store_manager: the cards, purchases and points of their own store(s) (scoped by loyalty.scoping);
- cashier: the till API only (not staff: no console), bound to a store.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.apps import apps as global_apps
from django.db import transaction

ADMIN = "admin"
MARKETING = "marketing"
STORE_MANAGER = "store_manager"
CASHIER = "cashier"  # the name loyalty.permissions.CASHIER_GROUP has always used
ROLES = (ADMIN, MARKETING, STORE_MANAGER, CASHIER)

# Roles whose members work in the console (is_staff); a cashier only uses the till API.
STAFF_ROLES = frozenset({ADMIN, MARKETING, STORE_MANAGER})

# Custom permissions (declared in the models' Meta): what is_staff alone never grants.
EXPORT_CONTACT = "crm.export_contact"  # contacts CSV and a person's data-rights export
ERASE_CONTACT = "crm.erase_contact"  # anonymise a person
HANDOVER_STAFF = "crm.handover_staff"  # hand a staff member's customers and groups over
USE_TILL = "loyalty.use_till"  # scan cards and redeem rewards at a till
ALL_STORES = "loyalty.all_stores"  # not scoped to one's own stores


def _model_perms(app_label: str, actions: str, models: Iterable[str]) -> list[str]:
    return [f"{app_label}.{action}_{model}" for model in models for action in actions.split()]


ALL = "__all__"

ROLE_PERMISSIONS: dict[str, str | frozenset[str]] = {
    ADMIN: ALL,
    MARKETING: frozenset(
        _model_perms(
            "crm", "view",
            [
                "contact", "followrelation", "contactevent", "welcomemessage", "consentrecord",
                "taggroup", "tag", "contacttag", "channel",
                "customergroup", "groupmember", "groupjoinway", "vipinvite",
                "campaign", "massmessage", "campaignrecipient", "luckydraw", "luckydrawentry",
                "redpacketpool", "redpacketclaim", "redpacketrefund", "fissioninvite", "fissionreferral", "grouppacket",
                "staff",  # to pick a channel's staff; handing them over is not theirs
            ],
        )
        + _model_perms("crm", "add change", ["tag", "channel", "campaign", "luckydraw", "redpacketpool",
                                             "groupjoinway", "grouppacket"])
        + _model_perms("crm", "change", ["contact", "taggroup", "customergroup"])
        # Group lucky draws (issue 13.4): marketing creates, opens, closes and reveals; entries and winners are read.
        + _model_perms("crm", "view", ["groupdraw", "groupdrawprize", "groupdrawentry", "groupdrawwinner",
                                       "groupdrawannouncement"])
        + _model_perms("crm", "add change", ["groupdraw"])
        + _model_perms("crm", "add delete", ["contacttag"])
        + _model_perms("crm", "add", ["consentrecord"])  # consent is versioned: a new row, never an edit
        + _model_perms("crm", "delete", ["campaign"])  # a draft; the service refuses a launched one
        + _model_perms("crm", "view add change delete", ["segment"])  # saved segments; delete refused while used
        + [EXPORT_CONTACT]
        # Earning rules and their preview (issue 12.1); app-label strings only, crm imports nothing of loyalty.
        + _model_perms("loyalty", "view add change delete", ["earningrule"]) + ["loyalty.preview_earning"]
        # Rewards and coupons (issue 12.5): the catalogue, grants without points (API), a campaign's coupon (the
        # compose form's section) and journey steps; what was issued or granted is read-only. Tiers to choose from.
        + _model_perms("loyalty", "view add change", ["reward", "journeystep"])
        + _model_perms("loyalty", "view add", ["coupon"])
        + _model_perms("loyalty", "view add change delete", ["campaigncoupon"])
        + _model_perms("loyalty", "view", ["campaigncoupongrant", "journeygrant", "tier"])
    ),
    STORE_MANAGER: frozenset(
        _model_perms("loyalty", "view", ["card", "purchase", "purchaseline", "pointsledger", "tierchange",
                                         "redemption", "store", "tier", "reward", "product"])
        + _model_perms("loyalty", "view change", ["scanreview"])  # their stores' flagged scans: approve, reverse
    ),
    CASHIER: frozenset({USE_TILL}),
}


@transaction.atomic
def roles_ensure(*, registry=None) -> dict[str, int]:
    """Create the role groups and set each one's permissions to exactly ROLE_PERMISSIONS; idempotent.

    `registry` is a migration's app registry (historical models); the live one otherwise. Permissions not in
    the database yet (an app not migrated) are skipped; the next migrate adds them. Returns {role: count}."""
    registry = registry or global_apps
    Group = registry.get_model("auth", "Group")
    Permission = registry.get_model("auth", "Permission")
    known = {
        f"{app_label}.{codename}": pk
        for pk, app_label, codename in Permission.objects.values_list("pk", "content_type__app_label", "codename")
    }
    counts = {}
    for role, wanted in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        ids = list(known.values()) if wanted == ALL else [known[name] for name in wanted if name in known]
        group.permissions.set(ids)
        counts[role] = len(ids)
    return counts


def roles_missing_permissions() -> list[str]:
    """Permission names a role lists that the database does not have (a typo, or a model renamed)."""
    from django.contrib.auth.models import Permission

    known = {f"{a}.{c}" for a, c in Permission.objects.values_list("content_type__app_label", "codename")}
    return sorted(
        name for wanted in ROLE_PERMISSIONS.values() if wanted != ALL for name in wanted if name not in known
    )


@transaction.atomic
def user_role_set(user, role: str) -> None:
    """Put a user in exactly one role group (other role groups are left); is_staff follows the role."""
    from django.contrib.auth.models import Group

    if role not in ROLES:
        from crm.errors import ApplicationError

        raise ApplicationError(f"Unknown role {role!r}; one of {', '.join(ROLES)}.", field="role")
    roles_ensure()
    user.groups.remove(*Group.objects.filter(name__in=ROLES).exclude(name=role))
    user.groups.add(Group.objects.get(name=role))
    is_staff = role in STAFF_ROLES or user.is_superuser
    if user.is_staff != is_staff:
        user.is_staff = is_staff
        user.save(update_fields=["is_staff"])


def roles_post_migrate(sender, **kwargs) -> None:
    """post_migrate receiver (crm.apps): keep the groups in step with the code after every migrate or flush.

    post_migrate is sent once per app, in INSTALLED_APPS order, each time after that app's permissions are made:
    acting on crm's and loyalty's turns covers both apps' permissions."""
    if sender.label in ("crm", "loyalty"):
        from auditlog.context import disable_auditlog

        with disable_auditlog():  # the system keeping itself in step, not a staff write
            roles_ensure()
