"""The one error type the WeCom client raises, saying whether a retry can help."""

from __future__ import annotations

# Codes that a later retry of the same call can fix (WeCom's "system busy", rate/concurrency limits,
# version conflicts, a mass-message task still being dispatched, another app sending the welcome).
RETRYABLE_ERRCODES = frozenset({-1, 6000, 41063, 41096, 45009, 45033})
# The client itself backs off and retries these (bounded); the others above are left to the caller's schedule.
BACKOFF_ERRCODES = frozenset({-1, 6000, 45009, 45033})
# The token was invalidated or expired early: the client refreshes it once and repeats the call.
TOKEN_ERRCODES = frozenset({40014, 42001})
# errcode used for transport failures (timeouts, connection errors, HTTP 5xx, bad JSON).
TRANSPORT_ERRCODE = -1
# Calls that create something each time WeCom receives them. After a transport failure that may have happened
# after WeCom received the request (a read timeout, a 5xx, a broken answer) the client does not send them again:
# a second add_msg_template would be a second task and the customer would get the message twice. The caller finds
# out what happened (crm.services.pushes looks the task up before resending) and retries on its own schedule.
# media/upload is not here: a second temporary media id for the same file is harmless.
NOT_IDEMPOTENT = frozenset({
    "externalcontact/add_msg_template",
    "externalcontact/add_contact_way",
    "externalcontact/groupchat/add_join_way",
    "externalcontact/add_corp_tag",
    "message/send",
})


class WeComError(Exception):
    """A WeCom call failed: `errcode` as WeCom gave it (-1 for transport failures), and whether a retry can help."""

    def __init__(
        self, errcode: int, errmsg: str, path: str, retryable: bool | None = None, maybe_applied: bool = False
    ) -> None:
        self.errcode = int(errcode)
        self.errmsg = errmsg
        self.path = path
        self.retryable = (self.errcode in RETRYABLE_ERRCODES) if retryable is None else retryable
        # A transport failure after the request may have reached WeCom: the call may have taken effect.
        self.maybe_applied = maybe_applied
        super().__init__(f"{path}: errcode {self.errcode}: {errmsg}")

    @property
    def permanent(self) -> bool:
        """Retrying the same request cannot succeed (healthchecks' Transport convention)."""
        return not self.retryable

    def __reduce__(self):  # picklable, so Celery can carry it in a retry
        return (self.__class__, (self.errcode, self.errmsg, self.path, self.retryable, self.maybe_applied))
