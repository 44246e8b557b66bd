"""Celery tasks for planning campaign runs (queue `pushes`): one chunk per task, so a killed worker loses one."""

from __future__ import annotations

from celery import shared_task

from crm.services.campaign_runs import run_plan_chunk


@shared_task(acks_late=True)
def plan_run(run_id: int) -> bool:
    """Plan the next chunk of a run, then queue the next one while there is more. Idempotent: a redelivered or
    duplicate task locks the run and resumes after its committed cursor (or finds it planned)."""
    more = run_plan_chunk(run_id)
    if more:
        plan_run.delay(run_id)
    return more
