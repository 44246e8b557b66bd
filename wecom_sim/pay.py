"""Enterprise red packets: WeChat Pay v2 style (XML + MD5) sendworkwxredpack / queryworkwxredpack."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
import xml.etree.ElementTree as ET

from django.db import IntegrityError, transaction
from django.db.models import F
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from wecom_sim import delivery, faults, ids, limits
from wecom_sim.clockwork import settle_redpacks
from wecom_sim.corp import get_corp, now, sim_settings
from wecom_sim.models import SimCorp, SimRedPack, SimShopper

WORKWX_SIGN_KEYS = ("act_name", "mch_billno", "mch_id", "nonce_str", "re_openid", "total_amount", "wxappid")
SEND_REQUIRED = ("nonce_str", "sign", "mch_billno", "mch_id", "wxappid", "re_openid", "total_amount", "act_name",
                 "workwx_sign")
MIN_FEN, MAX_FEN = 100, 20000
DAILY_COUNT, DAILY_FEN = 10, 100_000
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
CHINA = dt.timezone(dt.timedelta(hours=8))


class PayError(Exception):
    def __init__(self, err_code: str, des: str) -> None:
        super().__init__(err_code)
        self.err_code, self.des = err_code, des


def md5_upper(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest().upper()


def workwx_sign(fields: dict, secret: str) -> str:
    joined = "&".join(f"{k}={fields.get(k, '')}" for k in WORKWX_SIGN_KEYS)
    return md5_upper(f"{joined}&secret={secret}")


def pay_sign(fields: dict, api_key: str) -> str:
    joined = "&".join(f"{k}={v}" for k, v in sorted(fields.items()) if k != "sign" and v not in (None, ""))
    return md5_upper(f"{joined}&key={api_key}")


def parse_xml(raw: bytes) -> dict:
    root = ET.fromstring(raw)
    if root.tag != "xml":
        raise ValueError("root must be <xml>")
    return {child.tag: (child.text or "").strip() for child in root}


def to_xml(fields: dict) -> str:
    parts = []
    for key, value in fields.items():
        if value is None:
            continue
        text = str(value)
        parts.append(f"<{key}>{text}</{key}>" if text.isdigit() else f"<{key}><![CDATA[{text}]]></{key}>")
    return "<xml>" + "".join(parts) + "</xml>"


def xml_reply(fields: dict) -> HttpResponse:
    return HttpResponse(to_xml(fields), content_type="text/xml; charset=utf-8")


def _fail_reply(fields: dict, err: PayError) -> HttpResponse:
    return xml_reply({"return_code": "SUCCESS", "return_msg": err.des, "result_code": "FAIL",
                      "err_code": err.err_code, "err_code_des": err.des, **_echo(fields)})


def _echo(fields: dict) -> dict:
    return {k: fields.get(k, "") for k in ("mch_billno", "mch_id", "wxappid", "re_openid", "total_amount")}


def _pre(request: HttpRequest, path: str) -> tuple[dict | None, HttpResponse | None, dict | None]:
    """Shared front: stats, faults (transport kinds), XML parse. -> (fields, early response, SYSTEMERROR rule)."""
    limits.count_call(path)
    delivery.notify()
    rule = faults.pick(path)
    if rule and rule["kind"] in ("5xx", "timeout", "slow"):
        if rule["kind"] == "5xx":
            return None, HttpResponse("Bad Gateway", status=502), None
        time.sleep((rule.get("delay_ms") or (1500 if rule["kind"] == "slow" else 12000)) / 1000)
        if rule["kind"] == "timeout":
            return None, HttpResponse("", status=504), None
        rule = None
    if request.method != "POST":
        return None, xml_reply({"return_code": "FAIL", "return_msg": "POST required"}), None
    try:
        fields = parse_xml(request.body)
    except (ET.ParseError, ValueError):
        return None, xml_reply({"return_code": "FAIL", "return_msg": "data format error", "err_code": "47001"}), None
    return fields, None, rule


def _check_sign(fields: dict) -> None:
    if fields.get("sign", "").upper() != pay_sign(fields, sim_settings()["PAY_API_KEY"]):
        raise PayError("SIGN_ERROR", "签名错误")


def _send_checks(corp: SimCorp, fields: dict) -> int:
    missing = [k for k in SEND_REQUIRED if not fields.get(k)]
    if missing:
        raise PayError("PARAM_ERROR", f"参数错误: {missing[0]}")
    _check_sign(fields)
    if fields["workwx_sign"].upper() != workwx_sign(fields, sim_settings()["PAY_SECRET"]):
        raise PayError("SIGN_ERROR", "workwx_sign签名错误")
    if fields["mch_id"] != corp.mch_id or fields["wxappid"] != corp.corpid:
        raise PayError("PARAM_ERROR", "mch_id或wxappid错误")
    if len(fields["mch_billno"]) > 28 or not fields["mch_billno"].isalnum():
        raise PayError("PARAM_ERROR", "mch_billno格式错误")
    try:
        return int(fields["total_amount"])
    except ValueError:
        raise PayError("PARAM_ERROR", "total_amount格式错误")


def _business_checks(corp: SimCorp, fields: dict, amount: int) -> None:
    if not MIN_FEN <= amount <= MAX_FEN:
        raise PayError("MONEY_LIMIT", "发放金额超出限制")
    if not SimShopper.objects.filter(corp=corp, openid=fields["re_openid"]).exists():
        raise PayError("OPENID_ERROR", "openid和appid不匹配")
    day = now(corp).astimezone(CHINA).replace(hour=0, minute=0, second=0, microsecond=0)
    today = SimRedPack.objects.filter(re_openid=fields["re_openid"], send_time__gte=day)
    if today.count() >= DAILY_COUNT:
        raise PayError("SENDNUM_LIMIT", "该用户今日领取红包个数超过限制")
    if sum(today.values_list("total_amount", flat=True)) + amount > DAILY_FEN:
        raise PayError("RCVDAMOUNT_LIMIT", "该用户今日领取金额超过限制")
    if SimCorp.objects.get(pk=corp.pk).merchant_balance_fen < amount:
        raise PayError("NOTENOUGH", "帐号余额不足")


def _params_hash(fields: dict) -> str:
    stable = {k: v for k, v in fields.items() if k not in ("sign", "nonce_str", "workwx_sign")}
    return hashlib.sha256(json.dumps(stable, sort_keys=True).encode()).hexdigest()


def _success(pack: SimRedPack) -> dict:
    return {"return_code": "SUCCESS", "return_msg": "发放成功", "result_code": "SUCCESS", "err_code": "SUCCESS",
            "err_code_des": "发放成功", "mch_billno": pack.mch_billno, "mch_id": pack.mch_id,
            "wxappid": pack.wxappid, "re_openid": pack.re_openid, "total_amount": pack.total_amount,
            "send_listid": pack.send_listid}


@csrf_exempt
def sendworkwxredpack(request: HttpRequest) -> HttpResponse:
    fields, early, rule = _pre(request, "mch/mmpaymkttransfers/sendworkwxredpack")
    if early:
        return early
    corp = get_corp()
    try:
        amount = _send_checks(corp, fields)
        existing = SimRedPack.objects.filter(mch_billno=fields["mch_billno"]).first()
        if existing is None:
            _business_checks(corp, fields, amount)
            existing = _create(corp, fields, amount)
        elif existing.params_hash != _params_hash(fields):
            raise PayError("FATAL_ERROR", "更换了openid或金额等参数, 请使用原参数重试")
    except PayError as err:
        return _fail_reply(fields, err)
    if rule and rule["kind"] in ("SYSTEMERROR", "-1"):
        # The packet went out but the answer says otherwise: only a retry with the same billno is safe.
        return _fail_reply(fields, PayError("SYSTEMERROR", "系统繁忙,请稍后再试"))
    return xml_reply(_success(existing))


def _create(corp: SimCorp, fields: dict, amount: int) -> SimRedPack:
    try:
        with transaction.atomic():
            if not SimCorp.objects.filter(pk=corp.pk, merchant_balance_fen__gte=amount).update(
                    merchant_balance_fen=F("merchant_balance_fen") - amount):
                raise PayError("NOTENOUGH", "帐号余额不足")
            return SimRedPack.objects.create(
                mch_billno=fields["mch_billno"], mch_id=fields["mch_id"], wxappid=fields["wxappid"],
                re_openid=fields["re_openid"], total_amount=amount, params_hash=_params_hash(fields),
                params={k: v for k, v in fields.items() if k != "sign"},
                send_listid="1000041701" + ids.random_token(18, "0123456789"), send_time=now(corp),
            )
    except IntegrityError:  # a concurrent retry of the same billno won
        pack = SimRedPack.objects.get(mch_billno=fields["mch_billno"])
        if pack.params_hash != _params_hash(fields):
            raise PayError("FATAL_ERROR", "更换了openid或金额等参数, 请使用原参数重试")
        return pack


def _fmt(moment) -> str:
    return moment.astimezone(CHINA).strftime(TIME_FORMAT) if moment else ""


def query_fields(pack: SimRedPack) -> dict:
    params = pack.params
    return {
        "return_code": "SUCCESS", "return_msg": "OK", "result_code": "SUCCESS", "err_code": "SUCCESS",
        "err_code_des": "OK", "mch_billno": pack.mch_billno, "mch_id": pack.mch_id, "detail_id": pack.send_listid,
        "status": pack.status, "send_type": "API", "total_amount": pack.total_amount, "reason": "",
        "send_time": _fmt(pack.send_time), "refund_time": _fmt(pack.refund_time),
        "refund_amount": pack.total_amount if pack.status == "REFUND" else "", "wishing": params.get("wishing", ""),
        "remark": params.get("remark", ""), "act_name": params.get("act_name", ""), "openid": pack.re_openid,
        "amount": pack.total_amount, "rcv_time": _fmt(pack.rcv_time), "sender_name": params.get("sender_name", ""),
    }


@csrf_exempt
def queryworkwxredpack(request: HttpRequest) -> HttpResponse:
    fields, early, rule = _pre(request, "mch/mmpaymkttransfers/queryworkwxredpack")
    if early:
        return early
    corp = get_corp()
    try:
        if not fields.get("mch_billno") or not fields.get("mch_id") or not fields.get("nonce_str"):
            raise PayError("PARAM_ERROR", "参数错误")
        _check_sign(fields)
        if rule and rule["kind"] in ("SYSTEMERROR", "-1"):
            raise PayError("SYSTEMERROR", "系统繁忙,请稍后再试")
        settle_redpacks(corp)
        pack = SimRedPack.objects.filter(mch_billno=fields["mch_billno"], mch_id=fields["mch_id"]).first()
        if pack is None or now(corp) < pack.send_time + dt.timedelta(seconds=corp.redpack_query_delay_seconds):
            # Right after sending the order may still be processing: "not found" is not a failure.
            raise PayError("NOT_FOUND", "指定单号数据不存在")
    except PayError as err:
        return xml_reply({"return_code": "SUCCESS", "return_msg": err.des, "result_code": "FAIL",
                          "err_code": err.err_code, "err_code_des": err.des,
                          "mch_billno": fields.get("mch_billno", ""), "mch_id": fields.get("mch_id", "")})
    return xml_reply(query_fields(pack))


def redpack_json(pack: SimRedPack) -> dict:
    return {"mch_billno": pack.mch_billno, "re_openid": pack.re_openid, "total_amount": pack.total_amount,
            "status": pack.status, "send_listid": pack.send_listid, "send_time": pack.send_time.isoformat(),
            "rcv_time": pack.rcv_time.isoformat() if pack.rcv_time else None,
            "refund_time": pack.refund_time.isoformat() if pack.refund_time else None,
            "act_name": pack.params.get("act_name", "")}


