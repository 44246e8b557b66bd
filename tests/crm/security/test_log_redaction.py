"""No access token or corp secret in a log line, whoever logs it: Django's request logger prints a failed request's
full URL (and its repr), which for a WeCom path carries ?access_token=."""

from __future__ import annotations

import io
import json
import logging
import logging.config

from django.conf import settings
from django.test import RequestFactory


def test_a_failed_requests_url_is_logged_without_its_access_token():
    stream = io.StringIO()
    config = dict(settings.LOGGING, handlers={"probe": {"class": "logging.StreamHandler", "formatter": "json",
                                                         "stream": stream}})  # fmt: skip
    config["root"] = {"handlers": ["probe"], "level": "INFO"}
    logging.config.dictConfig(config)
    try:
        request = RequestFactory().post("/wecom-sim/cgi-bin/externalcontact/add_contact_way?access_token=SEKRIT42x"
                                        "&corpsecret=HUSH99&debug=1")  # fmt: skip
        logging.getLogger("django.request").warning("Gateway Timeout: %s", request.get_full_path(),
                                                    extra={"status_code": 504, "request": request})  # fmt: skip
    finally:
        logging.config.dictConfig(settings.LOGGING)
    line = stream.getvalue()
    assert "SEKRIT42x" not in line and "HUSH99" not in line, line
    record = json.loads(line)
    assert record["message"].endswith("add_contact_way?access_token=***&corpsecret=***&debug=1")
    assert record["status_code"] == 504
