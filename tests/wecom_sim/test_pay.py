"""Enterprise red packets over real HTTP: XML + MD5 signing, idempotency, bounds, caps, balance, faults, refunds."""

import hashlib
import itertools
import xml.etree.ElementTree as ET

import requests
from django.conf import settings

_billnos = itertools.count(1)


def md5(text):
    return hashlib.md5(text.encode()).hexdigest().upper()


def signed(fields):
    conf = settings.WECOM_SIM
    keys = ("act_name", "mch_billno", "mch_id", "nonce_str", "re_openid", "total_amount", "wxappid")
    fields = dict(fields)
    fields["workwx_sign"] = md5("&".join(f"{k}={fields[k]}" for k in keys) + "&secret=" + conf["PAY_SECRET"])
    body = "&".join(f"{k}={v}" for k, v in sorted(fields.items()) if v != "")
    fields["sign"] = md5(body + "&key=" + conf["PAY_API_KEY"])
    return fields


def xml(fields):
    return "<xml>" + "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items()) + "</xml>"


def post(base, api, fields, raw=None):
    response = requests.post(f"{base}/wecom-sim/mch/mmpaymkttransfers/{api}",
                             data=(raw if raw is not None else xml(fields)).encode(), timeout=10)
    assert response.status_code == 200
    return {c.tag: c.text or "" for c in ET.fromstring(response.content)}


def send_fields(sim, openid, amount=100, billno=None, **extra):
    corp = sim.corp()
    return {"nonce_str": "n0nce", "mch_billno": billno or f"{corp['mch_id']}20261111{next(_billnos):010d}",
            "mch_id": corp["mch_id"], "wxappid": corp["corpid"], "sender_name": "Brand", "re_openid": openid,
            "total_amount": str(amount), "wishing": "Happy 11.11", "act_name": "1111", "remark": "r", **extra}


def query(sim, billno):
    corp = sim.corp()
    return post(sim.base, "queryworkwxredpack", signed_query(corp, billno))


def signed_query(corp, billno):
    fields = {"nonce_str": "q", "mch_billno": billno, "mch_id": corp["mch_id"], "appid": corp["corpid"]}
    body = "&".join(f"{k}={v}" for k, v in sorted(fields.items()))
    fields["sign"] = md5(body + "&key=" + settings.WECOM_SIM["PAY_API_KEY"])
    return fields


def test_send_is_idempotent_and_signed(sim, world):
    openid = world["shopper"]["openid"]
    fields = send_fields(sim, openid, 188)
    first = post(sim.base, "sendworkwxredpack", signed(fields))
    assert first["return_code"] == "SUCCESS" and first["result_code"] == "SUCCESS" and first["send_listid"]
    again = post(sim.base, "sendworkwxredpack", signed({**fields, "nonce_str": "other"}))
    assert again["send_listid"] == first["send_listid"]
    changed = post(sim.base, "sendworkwxredpack", signed({**fields, "total_amount": "199"}))
    assert changed["result_code"] == "FAIL" and changed["err_code"] == "FATAL_ERROR"
    tampered = {**signed(fields), "total_amount": "999"}
    assert post(sim.base, "sendworkwxredpack", tampered)["err_code"] == "SIGN_ERROR"
    ledger = sim.redpacks()
    assert [p["total_amount"] for p in ledger["redpacks"]] == [188]
    status = query(sim, fields["mch_billno"])
    assert status["status"] == "SENT" and status["openid"] == openid and status["total_amount"] == "188"
    sim.receive_redpack(fields["mch_billno"])
    assert query(sim, fields["mch_billno"])["status"] == "RECEIVED"
    assert query(sim, "nope")["err_code"] == "NOT_FOUND"


def test_bounds_caps_balance_and_params(sim, world):
    openid = world["shopper"]["openid"]
    assert post(sim.base, "sendworkwxredpack", signed(send_fields(sim, openid, 99)))["err_code"] == "MONEY_LIMIT"
    assert post(sim.base, "sendworkwxredpack", signed(send_fields(sim, openid, 20001)))["err_code"] == "MONEY_LIMIT"
    assert post(sim.base, "sendworkwxredpack", signed(send_fields(sim, "onobody")))["err_code"] == "OPENID_ERROR"
    missing = send_fields(sim, openid)
    del missing["act_name"]
    missing["act_name"] = ""
    assert post(sim.base, "sendworkwxredpack", signed(missing))["err_code"] == "PARAM_ERROR"
    codes = [post(sim.base, "sendworkwxredpack", signed(send_fields(sim, openid)))["result_code"] for _ in range(11)]
    assert codes == ["SUCCESS"] * 10 + ["FAIL"]
    assert post(sim.base, "sendworkwxredpack", signed(send_fields(sim, openid)))["err_code"] == "SENDNUM_LIMIT"
    sim.configure(merchant_balance_fen=150)
    other = sim.add_shopper("李强")["openid"]
    assert post(sim.base, "sendworkwxredpack", signed(send_fields(sim, other, 200)))["err_code"] == "NOTENOUGH"


def test_systemerror_then_retry_same_billno(sim, world):
    sim.fault("mch/mmpaymkttransfers/sendworkwxredpack", "SYSTEMERROR", count=1)
    fields = send_fields(sim, world["shopper"]["openid"], 500)
    first = post(sim.base, "sendworkwxredpack", signed(fields))
    assert first["result_code"] == "FAIL" and first["err_code"] == "SYSTEMERROR"
    retry = post(sim.base, "sendworkwxredpack", signed(fields))
    assert retry["result_code"] == "SUCCESS"
    assert len(sim.redpacks()["redpacks"]) == 1  # paid once


def test_unclaimed_refund_through_clock(sim, world):
    balance = sim.corp()["merchant_balance_fen"]
    fields = send_fields(sim, world["shopper"]["openid"], 300)
    post(sim.base, "sendworkwxredpack", signed(fields))
    assert sim.redpacks()["merchant_balance_fen"] == balance - 300
    sim.advance(86400 + 1)
    assert query(sim, fields["mch_billno"])["status"] == "RFUND_ING"
    sim.advance(61)
    refunded = query(sim, fields["mch_billno"])
    assert refunded["status"] == "REFUND" and refunded["refund_amount"] == "300" and refunded["refund_time"]
    assert sim.redpacks()["merchant_balance_fen"] == balance


def test_malformed_xml_is_not_500(sim):
    body = post(sim.base, "sendworkwxredpack", {}, raw="<xml><mch_billno>")
    assert body["return_code"] == "FAIL" and body["err_code"] == "47001"


def test_query_not_found_right_after_sending(sim, world):
    sim.configure(redpack_query_delay_seconds=30)
    fields = send_fields(sim, world["shopper"]["openid"], 150)
    sent = post(sim.base, "sendworkwxredpack", signed(fields))
    assert sent["result_code"] == "SUCCESS"
    early = query(sim, fields["mch_billno"])
    assert early["return_code"] == "SUCCESS" and early["result_code"] == "FAIL" and early["err_code"] == "NOT_FOUND"
    # Not a failure: a retry with the same billno pays nothing new.
    again = post(sim.base, "sendworkwxredpack", signed({**fields, "nonce_str": "retry"}))
    assert again["send_listid"] == sent["send_listid"] and len(sim.redpacks()["redpacks"]) == 1
    sim.advance(31)
    assert query(sim, fields["mch_billno"])["status"] == "SENT"
