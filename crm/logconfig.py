"""The JSON log line format, shared by Django's LOGGING and gunicorn's logconfig_dict."""

import re

from pythonjsonlogger.json import JsonFormatter

# A URL's access token or corp secret, wherever a line carries one: Django's own request logging prints the full
# URL of a failed request (the simulator's WeCom paths carry ?access_token=), and an exception's text may too.
SECRET_IN_TEXT = re.compile(r"(access_token|corpsecret)=[^&\s'\"\\]+")


def redact(text: str) -> str:
    return SECRET_IN_TEXT.sub(r"\1=***", text)


class RedactingJsonFormatter(JsonFormatter):
    """python-json-logger's line with every access token and corp secret in it masked."""

    def format(self, record):
        return redact(super().format(record))


JSON_FORMATTER = {
    "()": "crm.logconfig.RedactingJsonFormatter",
    "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
    "datefmt": "%Y-%m-%dT%H:%M:%S%z",
    "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
}
