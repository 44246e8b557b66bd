"""Who may call an API view: Django permissions (granted by the role groups, crm.services.roles), per method.

A staff view says what each method needs:

    permission_classes = [HasStaffPerms]
    required_perms = {"GET": ("crm.view_campaign",), "POST": ("crm.add_campaign",)}

HEAD and OPTIONS need what GET needs; a method the mapping does not name is refused (superusers excepted, who
hold every permission anyway). Till views use IsTillUser (a cashier is not staff); views open to both combine
them with `|`.
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework.permissions import BasePermission

USE_TILL = "loyalty.use_till"


def _active(user) -> bool:
    return bool(user and user.is_authenticated and user.is_active)


def required_for(view, method: str) -> tuple[str, ...] | None:
    mapping = getattr(view, "required_perms", None) or {}
    if method in ("HEAD", "OPTIONS"):
        method = "GET"
    perms = mapping.get(method, mapping.get("*"))
    return tuple(perms) if perms is not None else None


class HasStaffPerms(BasePermission):
    """A signed-in, active staff member holding every permission the view requires for this method."""

    message = _("Your role does not allow this.")

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (_active(user) and user.is_staff):
            return False
        perms = required_for(view, request.method)
        if perms is None:
            return user.is_superuser
        return user.has_perms(perms)


class IsTillUser(BasePermission):
    """A signed-in user allowed to use a till (the cashier role; admins). Which store is checked by the service."""

    message = _("Only cashiers may use the till.")

    def has_permission(self, request, view) -> bool:
        return _active(request.user) and request.user.has_perm(USE_TILL)
