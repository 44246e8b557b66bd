"""Who may use the till API."""

from __future__ import annotations

from rest_framework.permissions import BasePermission

CASHIER_GROUP = "cashier"


class IsCashier(BasePermission):
    """A signed-in member of the "cashier" group, or staff."""

    message = "Only cashiers (group 'cashier') or staff may do this."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.is_active):
            return False
        return bool(user.is_staff or user.groups.filter(name=CASHIER_GROUP).exists())
