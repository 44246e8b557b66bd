"""CRM models: the mini-game gate's sessions (one completion per pool and contact)."""

from django.db import models

__all__ = ["GameSession"]


class GameSession(models.Model):
    """A game the server let a customer start on a pool's page: its nonce signs the result (crm.services.game_gate).
    finished_at is set once, when a plausible signed result came back; at most one finished session per pool and
    contact (the partial UNIQUE), so a replayed or second result unlocks nothing more."""

    pool = models.ForeignKey("crm.RedPacketPool", on_delete=models.CASCADE, related_name="game_sessions")
    contact = models.ForeignKey("crm.Contact", on_delete=models.CASCADE, related_name="game_sessions")
    nonce = models.CharField(max_length=32, unique=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    score = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["pool", "contact"], condition=models.Q(finished_at__isnull=False),
                name="uniq_game_completion_pool_contact",
            )
        ]  # fmt: skip

    def __str__(self) -> str:
        return f"game {self.nonce[:8]} of {self.contact_id} in pool {self.pool_id}"
