"""Loyalty: cards, rotating QR tokens, till scans, purchases, the points ledger, tiers and rewards."""
