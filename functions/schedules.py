"""Timers (NCRONTAB, UTC). Reconciliation and cost work land with their issues; until then each
run is logged."""

from __future__ import annotations

import logging

import azure.functions as func

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.schedule(arg_name="timer", schedule="0 */15 * * * *", run_on_startup=False, use_monitor=True)
def reconcile_attachments(timer: func.TimerRequest) -> None:
    log.info("reconcile (past due: %s): not served by this version yet", timer.past_due)


@bp.schedule(arg_name="timer", schedule="0 5 * * * *", run_on_startup=False, use_monitor=True)
def refresh_costs(timer: func.TimerRequest) -> None:
    log.info("cost refresh (past due: %s): not served by this version yet", timer.past_due)


@bp.schedule(arg_name="timer", schedule="0 0 7 * * *", run_on_startup=False, use_monitor=True)
def send_cost_digest(timer: func.TimerRequest) -> None:
    log.info("cost digest (past due: %s): not served by this version yet", timer.past_due)
