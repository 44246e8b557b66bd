"""Identifier shapes as WeCom issues them (wm..., wr..., et..., msg...)."""

from __future__ import annotations

import secrets
import string

_ALNUM = string.ascii_letters + string.digits


def random_token(length: int, alphabet: str = _ALNUM) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def external_userid() -> str:
    return "wm" + random_token(30, _ALNUM + "-_")


def openid() -> str:
    return "o" + random_token(27, _ALNUM + "-_")


def chat_id() -> str:
    return "wr" + random_token(30, _ALNUM + "-_")


def tag_id() -> str:
    return "et" + random_token(30, _ALNUM + "-_")


def msgid() -> str:
    return "msg" + random_token(26, _ALNUM + "-_")


def config_id() -> str:
    return secrets.token_hex(16)


def access_token() -> str:
    return random_token(96, _ALNUM + "-_")


def welcome_code() -> str:
    return random_token(43, _ALNUM + "-_")
