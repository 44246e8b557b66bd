"""The segment rollups loyalty keeps on PostgreSQL (migration 0011): spend per window, moved on with the day."""

from __future__ import annotations

from datetime import date

from django.db import connection, transaction


def spend_rollup_advance() -> date | None:
    """Move loyalty_segment_spend to today's Shanghai day: subtract each day that left a window since its last
    day (a rebuild after a long gap). Idempotent, and a no-op off PostgreSQL. Until it has run after midnight,
    segment counts sum spend from the rows (right, only slower)."""
    if connection.vendor != "postgresql":
        return None
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SELECT loyalty_segment_spend_advance()")
        return cur.fetchone()[0]
