"""Audit of staff writes with django-auditlog: who (actor), what (model, object, field changes), when, and from
where (remote address), one LogEntry per create, update, delete or many-to-many change.

The audited models are listed in settings.AUDITLOG_INCLUDE_TRACKING_MODELS. Only writes made by a signed-in
user are logged: a worker applying a WeCom callback or a customer on a card page is not staff, and those writes
are recorded in their own tables (timeline, ledger, callback events). Two exceptions, both auditlog's: changes to
a many-to-many field (a user's roles, a store's members, a handover's takeovers) are always logged, with no actor
when a command or worker made them, and bulk `QuerySet.update()` sends no signal and is not logged.
"""

from __future__ import annotations

from auditlog.context import auditlog_value
from auditlog.middleware import AuditlogMiddleware
from django.contrib.auth import get_user_model
from django.utils.functional import SimpleLazyObject


def _signed_in_user(request):
    user = getattr(request, "user", None)
    return user if user is not None and getattr(user, "is_authenticated", False) else None


class AuditMiddleware(AuditlogMiddleware):
    """auditlog's middleware, reading the user when the log entry is written rather than when the request comes
    in: a DRF token is authenticated inside the view, after every middleware has run (DRF then sets the user on
    the Django request)."""

    @staticmethod
    def _get_actor(request):
        return SimpleLazyObject(lambda: _signed_in_user(request))

    def __call__(self, request):
        try:
            return super().__call__(request)
        finally:
            # auditlog leaves its context set: a later write in this thread (outside any request) is no one's.
            # The signal_duid key stays: auditlog's pre_save receivers are process-wide, so one connected by a
            # request in flight on another thread also runs for this thread's writes and reads that key.
            auditlog_value.set({"signal_duid": None})


def current_actor():
    """The signed-in user the write being logged belongs to, or None (system writes, anonymous requests)."""
    try:
        actor = auditlog_value.get().get("actor")
    except LookupError:
        return None
    return actor if isinstance(actor, get_user_model()) else None


def skip_system_writes(sender, instance, action, **kwargs) -> bool | None:
    """auditlog's pre_log receiver: returning False skips the entry when no signed-in user made the write."""
    return None if current_actor() is not None else False


def mask_fully(value: str) -> str:
    """AUDITLOG_MASK_CALLABLE: a masked field shows that it changed, never what it held."""
    return "***"


def audit_scrub_contact(contact_id: int) -> int:
    """An erased contact's audit entries keep who did what and when, but no longer the person's name."""
    from auditlog.models import LogEntry
    from django.contrib.contenttypes.models import ContentType

    from crm.models import Contact

    return LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(Contact), object_pk=str(contact_id)
    ).update(object_repr=f"contact #{contact_id} (erased)")


def audit_action(instance, *, actor, action: str, changes: dict[str, tuple]) -> None:
    """One audit entry for a console action on a row the services write with conditional updates (which send no
    signal, so auditlog's tracking never sees them): who, which row, what changed, and the action's name."""
    from auditlog.models import LogEntry

    user = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    LogEntry.objects.log_create(
        instance, action=LogEntry.Action.UPDATE, actor=user, additional_data={"action": action},
        changes={field: [str(old), str(new)] for field, (old, new) in changes.items()},
    )  # fmt: skip
