"""The one simulated corp, created from settings.WECOM_SIM on first use, and the shared simulated clock."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import IntegrityError
from django.utils import timezone

from wecom_sim.models import SimCorp


def sim_settings() -> dict:
    return dict(settings.WECOM_SIM)


def corp_defaults() -> dict:
    conf = sim_settings()
    defaults = {
        "corpsecret": conf["CORP_SECRET"],
        "agentid": int(conf["AGENT_ID"]),
        "mch_id": conf.get("MCH_ID", ""),
        "confirm_delay_seconds": conf.get("CONFIRM_DELAY_SECONDS", 1.0),
    }
    # Optional knobs; the model defaults are WeCom's real values.
    for key, field in [
        ("TOKEN_EXPIRES_IN", "token_expires_in"),
        ("EXPIRED_TOKEN_ERRCODE", "expired_token_errcode"),
        ("RATE_LIMIT_PER_MINUTE", "rate_limit_per_minute"),
        ("CALLBACK_TIMEOUT", "callback_timeout"),
        ("CALLBACK_RETRIES", "callback_retries"),
        ("CALLBACK_RETRY_DELAY", "callback_retry_delay"),
        ("RECEIVE_QUOTA", "receive_quota"),
        ("FRIEND_LIMIT", "friend_limit"),
        ("GROUP_SIZE_LIMIT", "group_size_limit"),
        ("MERCHANT_BALANCE_FEN", "merchant_balance_fen"),
    ]:
        if key in conf:
            defaults[field] = conf[key]
    return defaults


def get_corp() -> SimCorp:
    corpid = sim_settings()["CORP_ID"]
    corp = SimCorp.objects.filter(corpid=corpid).first()
    if corp is None:
        try:
            corp = SimCorp.objects.create(corpid=corpid, **corp_defaults())
        except IntegrityError:  # another thread created it first
            corp = SimCorp.objects.get(corpid=corpid)
    return corp


def now(corp: SimCorp | None = None) -> dt.datetime:
    """The simulated time: real time plus the offset stored in the DB, so every process agrees."""
    offset = (corp or get_corp()).clock_offset
    return timezone.now() + dt.timedelta(seconds=offset)


def ts(moment: dt.datetime) -> int:
    return int(moment.timestamp())


def advance(seconds: float) -> SimCorp:
    corp = get_corp()
    SimCorp.objects.filter(pk=corp.pk).update(clock_offset=corp.clock_offset + float(seconds))
    corp.refresh_from_db()
    return corp


def callback_config(corp: SimCorp) -> tuple[str, str, str]:
    """(url, token, aes key): the corp's own when the admin API set them, else settings at delivery time."""
    conf = sim_settings()
    return (
        corp.callback_url or conf["CALLBACK_URL"],
        corp.callback_token or conf["CALLBACK_TOKEN"],
        corp.encoding_aes_key or conf["ENCODING_AES_KEY"],
    )
