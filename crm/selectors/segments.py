"""Read side of saved segments and of the filter language: the list, a preview (count and sample)."""

from __future__ import annotations

from django.db.models import QuerySet

from crm.models import Segment
from crm.services import segments


def segment_list() -> QuerySet[Segment]:
    return Segment.objects.select_related("created_by").order_by("name")


def segment_get(segment_id: int) -> Segment | None:
    return Segment.objects.select_related("created_by").filter(pk=segment_id).first()


def segment_preview(definition: dict, *, limit: int = 10) -> dict:
    """{"count": n, "sample": [first `limit` contacts by id]} of a validated definition."""
    return {"count": segments.segment_count(definition), "sample": segments.segment_sample(definition, limit)}
