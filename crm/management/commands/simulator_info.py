"""Print what a WeCom client needs to talk to the bundled simulator, and the callback settings the CRM uses."""

import json

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = ("Print the simulator's base URL, corp credentials, the CRM's callback token, AES key and URL, and the "
            "simulator's admin URL and key, as JSON.")

    def handle(self, *args, **options):
        api = settings.WECOM_API_BASE_URL
        root = api.rsplit("/cgi-bin", 1)[0]
        info = {
            # What an SDK calls its host (the real one is https://qyapi.weixin.qq.com); it appends /cgi-bin/...
            "base_url": root,
            "api_base_url": api,
            "pay_base_url": settings.WECOM_PAY_BASE_URL,
            "corpid": settings.WECOM_CORP_ID,
            "corpsecret": settings.WECOM_CORP_SECRET,
            "agentid": settings.WECOM_AGENT_ID,
            "token": settings.WECOM_CALLBACK_TOKEN,
            "encoding_aes_key": settings.WECOM_ENCODING_AES_KEY,
            "callback_url": settings.WECOM_CALLBACK_URL,
            "admin_url": root + "/admin/",
            "admin_key": settings.WECOM_SIM["ADMIN_KEY"],  # the X-Sim-Admin-Key header of the control API
        }
        self.stdout.write(json.dumps(info, indent=2))
