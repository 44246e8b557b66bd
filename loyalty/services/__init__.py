"""Loyalty services: each a typed function doing one business operation in a transaction."""

from loyalty.services.cards import card_get_or_create, card_number_generate
from loyalty.services.cashiers import cashier_ensure
from loyalty.services.points import points_adjust, points_credit
from loyalty.services.rewards import redemption_create, reward_delete, reward_save, reward_validate
from loyalty.services.scans import ScanResult, points_for_amount, scan_record
from loyalty.services.stores import store_save, store_upsert, store_validate
from loyalty.services.tiers import (
    tier_change_send_vip_invite,
    tier_delete,
    tier_evaluate,
    tier_for_points,
    tier_save,
    tier_validate,
    tiers_ensure_defaults,
)

__all__ = [
    "ScanResult",
    "card_get_or_create",
    "card_number_generate",
    "cashier_ensure",
    "points_adjust",
    "points_credit",
    "points_for_amount",
    "redemption_create",
    "reward_delete",
    "reward_save",
    "reward_validate",
    "scan_record",
    "store_save",
    "store_upsert",
    "store_validate",
    "tier_change_send_vip_invite",
    "tier_delete",
    "tier_evaluate",
    "tier_for_points",
    "tier_save",
    "tier_validate",
    "tiers_ensure_defaults",
]
