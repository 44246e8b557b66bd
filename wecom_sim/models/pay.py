"""The merchant's enterprise red-packet ledger."""

from __future__ import annotations

from django.db import models


class SimRedPack(models.Model):
    """A red packet sent through sendworkwxredpack, keyed by the merchant's bill number."""

    mch_billno = models.CharField(max_length=32, unique=True)
    mch_id = models.CharField(max_length=32)
    wxappid = models.CharField(max_length=64)
    re_openid = models.CharField(max_length=64, db_index=True)
    total_amount = models.IntegerField()
    params_hash = models.CharField(max_length=64)
    params = models.JSONField(default=dict)
    send_listid = models.CharField(max_length=64)
    status = models.CharField(max_length=16, default="SENT")
    send_time = models.DateTimeField()
    rcv_time = models.DateTimeField(null=True, blank=True)
    refund_time = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.mch_billno} {self.total_amount} {self.status}"
