"""Saved segments: a named definition in the filter language (crm.services.segments), reused by campaigns and the
contacts list (`?segment=<id>`)."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from crm.errors import ApplicationError, Conflict, NotFound
from crm.models import Campaign, Segment
from crm.services import segments


def _name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ApplicationError(_("name is required."), field="name")
    name = name.strip()
    if len(name) > Segment._meta.get_field("name").max_length:
        raise ApplicationError(_("name is too long."), field="name")
    return name


def _description(description: Any) -> str:
    if not isinstance(description, str) or len(description) > Segment._meta.get_field("description").max_length:
        raise ApplicationError(_("description must be text of at most 512 characters."), field="description")
    return description


def _save(segment: Segment) -> Segment:
    """Write it with its current count; a duplicate name is a 400 on `name`, nothing written."""
    segment.last_count = segments.segment_count(segment.definition)
    segment.counted_at = timezone.now()
    try:
        with transaction.atomic():
            segment.save()
    except IntegrityError:
        raise ApplicationError(_("A segment with this name already exists."), field="name") from None
    return segment


@transaction.atomic
def segment_create(*, name: str, definition: Any, description: str = "", actor=None) -> Segment:
    segment = Segment(
        name=_name(name),
        description=_description(description),
        definition=segments.segment_validate(definition, field="definition"),
        created_by=actor if getattr(actor, "pk", None) else None,
    )
    return _save(segment)


@transaction.atomic
def segment_update(segment_id: int, **fields: Any) -> Segment:
    """Edit name, description and/or definition (which may not come round to itself through saved segments)."""
    segment = Segment.objects.select_for_update().filter(pk=segment_id).first()
    if segment is None:
        raise NotFound(_("Segment %(id)s does not exist.") % {"id": segment_id})
    for key, value in fields.items():
        if key == "name":
            segment.name = _name(value)
        elif key == "description":
            segment.description = _description(value)
        elif key == "definition":
            segment.definition = segments.segment_validate(value, field="definition", segment_id=segment.pk)
        else:
            raise ApplicationError(_("%(key)s cannot be changed.") % {"key": key}, field=key)
    return _save(segment)


@transaction.atomic
def segment_delete(segment_id: int) -> None:
    """Refused (409) while a campaign targets it or another saved segment refers to it."""
    segment = Segment.objects.select_for_update().filter(pk=segment_id).first()
    if segment is None:
        raise NotFound(_("Segment %(id)s does not exist.") % {"id": segment_id})
    used_by = Campaign.objects.filter(saved_segment=segment).values_list("name", flat=True).first()
    if used_by is not None:
        raise Conflict(_("Campaign “%(name)s” uses this segment.") % {"name": used_by}, field="segment")
    for other in Segment.objects.exclude(pk=segment.pk).only("name", "definition"):
        if segment.pk in segments._saved_refs(other.definition):
            raise Conflict(_("Segment “%(name)s” refers to this segment.") % {"name": other.name}, field="segment")
    segment.delete()


def segment_definition(segment: Segment | int) -> dict:
    """The saved definition, normalised (a row written before the tree existed is converted on the way out)."""
    if not isinstance(segment, Segment):
        found = Segment.objects.filter(pk=segment).first()
        if found is None:
            raise NotFound(_("Segment %(id)s does not exist.") % {"id": segment}, field="saved_segment_id")
        segment = found
    try:
        return segments.segment_validate(segment.definition or {}, field="definition", segment_id=segment.pk)
    except ApplicationError:
        # Something it names is gone since (a tag, a staff member): a saved tree still resolves (that condition
        # matches nobody), so a run planned from it is not stopped by it.
        if isinstance(segment.definition, dict) and set(segment.definition) & {"all", "any", "not", "field"}:
            return segment.definition
        raise
