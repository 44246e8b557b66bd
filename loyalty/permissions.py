"""Who may use the till API: users holding loyalty.use_till (the cashier role, admins); see crm.api.permissions."""

from __future__ import annotations

from crm.api.permissions import IsTillUser

CASHIER_GROUP = "cashier"

IsCashier = IsTillUser  # the till views' name for it

__all__ = ["CASHIER_GROUP", "IsCashier", "IsTillUser"]
