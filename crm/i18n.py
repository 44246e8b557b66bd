"""Which language a request is answered in.

Staff (the console, the API): Django's own order, so a choice made with the console's language switch
(set_language, kept in the language cookie) wins, then the browser's Accept-Language, then LANGUAGE_CODE (English).

Customers (the /m/ pages opened from WeChat): the browser's Accept-Language only, and Chinese when it names no language
we have. A language cookie is ignored there: a staff member's console choice on a shared phone must not turn a
shopper's card page into English, and a shopper never picks a language.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from django.middleware.locale import LocaleMiddleware as DjangoLocaleMiddleware
from django.utils import translation
from django.utils.translation.trans_real import parse_accept_lang_header

CUSTOMER_PATH_PREFIX = "/m/"


def customer_language(accept_language: str) -> str:
    """The first language of an Accept-Language header that we have (zh-CN -> zh-hans, en-US -> en), else
    CUSTOMER_LANGUAGE_CODE (Chinese). A wildcard or an unknown language (fr) does not choose English."""
    for code, _quality in parse_accept_lang_header(accept_language or ""):
        if code == "*":
            continue
        try:
            return translation.get_supported_language_variant(code)
        except LookupError:
            continue
    return settings.CUSTOMER_LANGUAGE_CODE


class LocaleMiddleware(DjangoLocaleMiddleware):
    """Django's LocaleMiddleware (Content-Language, Vary: Accept-Language), with the customer rule for /m/."""

    def process_request(self, request: HttpRequest) -> None:
        if not request.path_info.startswith(CUSTOMER_PATH_PREFIX):
            return super().process_request(request)
        language = customer_language(request.headers.get("Accept-Language", ""))
        translation.activate(language)
        request.LANGUAGE_CODE = translation.get_language()
        return None
