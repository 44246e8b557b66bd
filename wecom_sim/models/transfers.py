"""Customer inheritance (on-the-job and resigned transfers)."""

from __future__ import annotations

from django.db import models

from wecom_sim.models.world import SimCorp


class SimTransfer(models.Model):
    """One customer's transfer: status 2 waiting, 1 done, 3 refused, 4 takeover at limit."""

    corp = models.ForeignKey(SimCorp, on_delete=models.CASCADE, related_name="transfers")
    kind = models.CharField(max_length=8)  # onjob | resigned
    handover_userid = models.CharField(max_length=64)
    takeover_userid = models.CharField(max_length=64)
    external_userid = models.CharField(max_length=64, db_index=True)
    status = models.IntegerField(default=2)
    created_at = models.DateTimeField()
    takeover_time = models.DateTimeField()
    transfer_success_msg = models.CharField(max_length=255, blank=True)

    def __str__(self) -> str:
        return f"{self.external_userid} {self.handover_userid}->{self.takeover_userid} {self.status}"
