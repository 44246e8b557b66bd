"""Points lots with expiry (issue 12, item 2): owned by the lots area; the card page reads points_expiring_next."""

from __future__ import annotations

from datetime import date


def points_expiring_next(card_id: int) -> tuple[int, date] | None:
    """(points, day in Asia/Shanghai) of the next lots to expire on this card, or None. Not yet written: lots land
    with the lots area."""
    return None
