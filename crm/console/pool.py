"""The red-packet pool page: the reconciliation budget = paid + pending + refunded + claimable (a red banner when it
does not balance), the claims by status, the fission leaderboard of a pool gated on friends, and the claims
themselves; live (it refreshes itself) while the pool takes claims."""

from __future__ import annotations

import logging

import redis
from django.contrib.auth.decorators import permission_required
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from crm.console.render import admin_url, console_render, page_of, yuan
from crm.models.redpackets import RedPacketClaim
from crm.selectors.fission import fission_leaderboard, fission_totals
from crm.selectors.pool_page import pool_page_claims, pool_page_claims_by_status, pool_page_pool
from crm.services.redpackets import redpacket_reconcile

logger = logging.getLogger(__name__)

# How often a live pool's page refreshes itself; a pool that is not taking claims does not poll.
POLL_EVERY = "5s"

# The terms of the identity, in the order the page shows them, and the parts of "pending".
TERMS = (
    ("paid_fen", gettext_lazy("Paid")),
    ("pending_fen", gettext_lazy("Pending (claimed, not paid yet)")),
    ("refunded_fen", gettext_lazy("Refunded")),
    ("claimable_fen", gettext_lazy("Still claimable")),
)
PENDING_PARTS = (
    ("queued_fen", gettext_lazy("Queued for payout")),
    ("paying_fen", gettext_lazy("Paying")),
    ("failed_fen", gettext_lazy("Payout failed (owed)")),
    ("in_flight_fen", gettext_lazy("Reserved, not written yet")),
)


@permission_required("crm.view_redpacketpool", raise_exception=True)
def pool_page(request: HttpRequest, pool_id: int) -> HttpResponse:
    pool = pool_page_pool(pool_id)
    if pool is None:
        raise Http404(_("No such red-packet pool."))
    try:
        report = redpacket_reconcile(pool.pk)
    except redis.RedisError:
        # The live state is in Redis: without it the page still shows the database's side, and says so.
        logger.warning("pool reconciliation without Redis", exc_info=True, extra={"pool_id": pool.pk})
        report = None
    status = request.GET.get("status") or ""
    if status not in RedPacketClaim.Status.values:
        status = ""
    claims = page_of(request, pool_page_claims(pool, status=status or None))
    for claim in claims:
        claim.amount = yuan(claim.amount_fen)
    leaderboard = None
    if pool.gate_friends:
        labels = dict(RedPacketClaim.Status.choices)
        leaderboard = [{**row, "claim_label": _(labels[row["claim_status"]]) if row["claim_status"] else ""}
                       for row in fission_leaderboard(pool)]  # fmt: skip
    context = {
        "pool": pool,
        "leaderboard": leaderboard,
        "fission": fission_totals(pool) if pool.gate_friends else None,
        "poll_every": POLL_EVERY if pool.status == pool.Status.ACTIVE else "",
        "live_url": request.get_full_path(),
        "report": report,
        "budget": yuan(pool.budget_fen),
        "terms": [(key, label, yuan(report[key]), report[key]) for key, label in TERMS] if report else [],
        "pending_parts": [(key, label, yuan(report[key]), report[key]) for key, label in PENDING_PARTS]
        if report else [],
        "total": yuan(report["total_fen"]) if report else None,
        "difference": yuan(report["total_fen"] - pool.budget_fen) if report else None,
        # The choices' labels are the catalogue's msgids: translated here, as get_status_display is for the rows.
        "by_status": [{**row, "label": _(row["label"]), "amount": yuan(row["amount_fen"])}
                      for row in pool_page_claims_by_status(pool)],
        "status": status,
        "claims": claims,
        "min_amount": yuan(pool.min_fen),
        "max_amount": yuan(pool.max_fen),
        "admin_change_url": admin_url("admin:crm_redpacketpool_change", pool.pk),
        "campaign_url": admin_url("admin:crm_campaign_change", pool.campaign_id) if pool.campaign_id else None,
        "page_url": reverse("console:pool", args=[pool.pk]),
    }
    title = _("Red-packet pool #%(id)s") % {"id": pool.pk}
    return console_render(request, "console/pool.html", context, title=title)
