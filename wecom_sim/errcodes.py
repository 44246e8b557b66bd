"""WeCom errcodes and their short English errmsg texts."""

from __future__ import annotations

TEXTS = {
    -1: "system busy",
    0: "ok",
    40001: "invalid credential, access_token is invalid or not latest",
    40003: "invalid userid",
    40013: "invalid corpid",
    40014: "invalid access_token",
    40058: "invalid Request Parameter",
    40063: "some parameters are empty",
    40068: "invalid tagid",
    40071: "UserTag Name Already Exist",
    40096: "invalid external userid",
    40097: "invalid handover userid",
    40098: "invalid takeover userid",
    40099: "external contact count reach limit",
    40126: "corp tag count exceed limit",
    40128: "transfer customer count limit",
    40129: "customer is under transfer",
    40130: "handover and takeover is the same",
    40131: "handover is not external user's follower",
    41001: "access_token missing",
    41002: "corpid missing",
    41004: "corpsecret missing",
    41037: "missing type",
    41040: "invalid scene",
    41041: "user count exceed limit",
    41042: "invalid style",
    41043: "missing config_id",
    41044: "invalid config_id",
    41048: "no available external user to send",
    41049: "welcome_code missing",
    41050: "invalid welcome_code or welcome_code expired",
    41051: "externaluser has started chatting",
    41054: "user not active",
    41063: "msg is being sent",
    41064: "attachment count exceed limit",
    41065: "invalid attachment msgtype",
    41091: "chat_id_list size exceed limit",
    41096: "welcome msg is being distributed",
    41093: "task has been cancelled",
    41094: "remind count exceed limit",
    42001: "access_token expired",
    43004: "require subscribe",
    45009: "api freq out of limit",
    45033: "api concurrent out of limit",
    47001: "data format error",
    48002: "api forbidden",
    48001: "api unauthorized",
    60111: "userid not found",
    81013: "user & party & tag all invalid",
    81017: "invalid owner_filter, too many visible users",
    84061: "not external contact",
    90500: "the owner of chat not dismiss",
    90501: "chat is not external chat",
    90502: "the owner has dismissed",
    90503: "chat is full",
    90504: "the new owner is the same as the old one",
}


def errmsg(code: int, ip: str = "127.0.0.1", extra: str = "") -> str:
    """The real shape: short text, hint, from ip, more-info URL."""
    import secrets
    import time

    text = TEXTS.get(code, "error") + (f", {extra}" if extra else "")
    if code == 0:
        return "ok"
    hint = f"{int(time.time())}{secrets.randbelow(10**12):012d}"
    return f"{text}, hint: [{hint}], from ip: {ip}, more info at https://open.work.weixin.qq.com/devtool/query?e={code}"
