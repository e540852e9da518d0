"""Timers (NCRONTAB, UTC). A timer does not retry a failed run; each waits for its next
occurrence, so every run must be safe to repeat. Reconciliation and cost work land with their
issues; until then those runs are logged."""

from __future__ import annotations

import logging

import azure.functions as func

from . import core

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.schedule(arg_name="timer", schedule="0 */5 * * * *", run_on_startup=False, use_monitor=True)
def requeue_stalled_operations(timer: func.TimerRequest) -> None:
    """Operations recorded but never started (their message was lost) are queued again."""
    count = core.bootstrap.container().intake.requeue_stalled()
    log.log(logging.WARNING if count else logging.INFO, "stall sweep: %d operation(s) queued again", count)


@bp.schedule(arg_name="timer", schedule="0 */15 * * * *", run_on_startup=False, use_monitor=True)
def reconcile_attachments(timer: func.TimerRequest) -> None:
    log.info("reconcile (past due: %s): not served by this version yet", timer.past_due)


@bp.schedule(arg_name="timer", schedule="0 5 * * * *", run_on_startup=False, use_monitor=True)
def refresh_costs(timer: func.TimerRequest) -> None:
    log.info("cost refresh (past due: %s): not served by this version yet", timer.past_due)


@bp.schedule(arg_name="timer", schedule="0 0 7 * * *", run_on_startup=False, use_monitor=True)
def send_cost_digest(timer: func.TimerRequest) -> None:
    log.info("cost digest (past due: %s): not served by this version yet", timer.past_due)
