"""WeChat's side of web OAuth (公众号网页授权): the Official Account app the CRM authorizes with, and its codes."""

from __future__ import annotations

from django.db import models


class SimOAuthApp(models.Model):
    """A WeChat Official Account bound to the corp's open platform account (so its unionids are the corp's)."""

    corp = models.ForeignKey("wecom_sim.SimCorp", on_delete=models.CASCADE, related_name="oauth_apps")
    appid = models.CharField(max_length=64, unique=True)
    secret = models.CharField(max_length=128)
    # The "网页授权域名" of the app's console: blank accepts any redirect_uri host; else it must match (10003).
    redirect_domain = models.CharField(max_length=255, blank=True)
    code_ttl_seconds = models.IntegerField(default=300)  # WeChat: a code is valid 5 minutes, once

    def __str__(self) -> str:
        return self.appid


class SimOAuthCode(models.Model):
    """A code handed to redirect_uri by authorize; exchanged once by sns/oauth2/access_token."""

    app = models.ForeignKey(SimOAuthApp, on_delete=models.CASCADE, related_name="codes")
    shopper = models.ForeignKey("wecom_sim.SimShopper", on_delete=models.CASCADE, related_name="oauth_codes")
    code = models.CharField(max_length=64, unique=True)
    scope = models.CharField(max_length=32)
    redirect_uri = models.CharField(max_length=1000)
    state = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.code[:8] + "..."
