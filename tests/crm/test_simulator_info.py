"""`simulator_info` prints what any WeCom client needs, and what it prints works against the simulator."""

import io
import json
import time

import pytest
import requests
from django.core.management import call_command

from crm.wecom.crypto import WXBizMsgCrypt, signature

pytestmark = pytest.mark.django_db(transaction=True)


def test_simulator_info_is_usable_by_a_wecom_client(live_stack):
    out = io.StringIO()
    call_command("simulator_info", stdout=out)
    info = json.loads(out.getvalue())
    assert {"base_url", "corpid", "corpsecret", "token", "encoding_aes_key", "callback_url"} <= set(info)

    # An SDK appends /cgi-bin/... to the host it is given.
    answer = requests.get(f"{info['base_url']}/cgi-bin/gettoken",
                          params={"corpid": info["corpid"], "corpsecret": info["corpsecret"]}, timeout=10).json()
    assert answer["errcode"] == 0 and answer["access_token"]

    # The callback token and key are the ones the CRM's receiver accepts: URL verification round-trips.
    crypt = WXBizMsgCrypt(info["token"], info["encoding_aes_key"], info["corpid"])
    echostr = crypt.encrypt("hello-wecom")
    timestamp = str(int(time.time()))
    params = {"timestamp": timestamp, "nonce": "n0nce", "echostr": echostr,
              "msg_signature": signature(info["token"], timestamp, "n0nce", echostr)}
    verified = requests.get(info["callback_url"], params=params, timeout=10)
    assert verified.status_code == 200
    assert verified.text == "hello-wecom"
