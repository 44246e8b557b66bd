"""Reads for group lucky draws: the public export anyone can verify (only once the seed is revealed)."""

from __future__ import annotations

from crm.models import GroupDraw


def draw_export(draw_id: int) -> dict | None:
    """The verifiable record of a revealed draw, or None (a draw not revealed keeps its seed secret)."""
    draw = GroupDraw.objects.filter(pk=draw_id, status=GroupDraw.Status.REVEALED).first()
    if draw is None:
        return None
    return {
        "draw": draw.pk,
        "name": draw.name,
        "commitment": draw.commitment,
        "seed": draw.seed_hex,
        "entries": sorted(draw.entries.values_list("external_userid", flat=True)),
        "prizes": [{"position": p.position, "kind": p.kind, "winners": p.winners} for p in draw.prizes.all()],
        "winners": [w.entry.external_userid for w in draw.winners.select_related("entry").order_by("rank")],
    }
