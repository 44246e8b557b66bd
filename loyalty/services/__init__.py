"""Loyalty services: each a typed function doing one business operation in a transaction."""

from loyalty.services.cards import card_get_or_create, card_number_generate
from loyalty.services.cashiers import cashier_ensure
from loyalty.services.points import points_adjust, points_credit
from loyalty.services.rewards import redemption_create
from loyalty.services.scans import ScanResult, points_for_amount, scan_record
from loyalty.services.stores import store_upsert
from loyalty.services.tiers import tier_change_send_vip_invite, tier_evaluate, tier_for_points, tiers_ensure_defaults

__all__ = [
    "ScanResult",
    "card_get_or_create",
    "card_number_generate",
    "cashier_ensure",
    "points_adjust",
    "points_credit",
    "points_for_amount",
    "redemption_create",
    "scan_record",
    "store_upsert",
    "tier_change_send_vip_invite",
    "tier_evaluate",
    "tier_for_points",
    "tiers_ensure_defaults",
]
