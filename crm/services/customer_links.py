"""Links to customer-facing pages (card page, red-packet page, lucky draw).

Two kinds:
- the same link for everyone (`pool_link`, `draw_link`, `card_link`): the page identifies the visitor through
  WeChat's web OAuth (crm/services/wechat_oauth.py), so a campaign can send one message to 10,000 customers;
- a signed link per customer (`sign_contact`, `card_url`, redpackets.claim_url, campaigns.draw_url): the token in
  the URL is the credential. The fallback (settings.CUSTOMER_LINKS = "signed"), and always accepted.
"""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.utils.translation import gettext as _

from crm.errors import ApplicationError

_SALT = "crm.customer-link"


def sign_contact(contact_id: int, purpose: str) -> str:
    return signing.dumps({"c": contact_id, "p": purpose}, salt=_SALT, compress=True)


def unsign_contact(token: str, purpose: str, max_age: int | None = None) -> int:
    """The contact id in a token made by sign_contact for this purpose, or a 403 ApplicationError."""
    contact_id, signed_for = unsign_contact_any(token, max_age)
    if signed_for != purpose:
        raise ApplicationError(_("This link is not valid here."), code="bad_link", field="token", status_code=403)
    return contact_id


def unsign_contact_any(token: str, max_age: int | None = None) -> tuple[int, str]:
    """(contact id, purpose) of a token made by sign_contact, verified; a 403 ApplicationError otherwise."""
    try:
        data = signing.loads(token, salt=_SALT, max_age=max_age)
        return int(data["c"]), str(data["p"])
    except signing.SignatureExpired:
        raise ApplicationError(_("This link has expired."), code="link_expired", field="token", status_code=403)
    except (signing.BadSignature, TypeError, KeyError, ValueError):
        raise ApplicationError(_("This link is not valid."), code="bad_link", field="token", status_code=403)


def absolute_url(path: str) -> str:
    return f"{settings.PUBLIC_BASE_URL.rstrip('/')}/{path.lstrip('/')}"


def card_url(contact_id: int) -> str:
    """The loyalty card page for this contact (served by loyalty at /m/card/<token>/)."""
    return absolute_url(f"/m/card/{sign_contact(contact_id, 'card')}/")


def pool_link(pool_id: int) -> str:
    """The red-packet pool's page, the same for every recipient (WeChat OAuth says who is claiming)."""
    return absolute_url(f"/m/pool/{int(pool_id)}/")


def draw_link(draw_id: int) -> str:
    """The lucky draw's page, the same for every recipient."""
    return absolute_url(f"/m/luckydraw/{int(draw_id)}/")


def card_link() -> str:
    """The loyalty card page: whoever opens it in WeChat sees their own card."""
    return absolute_url("/m/card/")
