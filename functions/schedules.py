"""Timers (NCRONTAB, UTC). A timer does not retry a failed run; each waits for its next
occurrence, so every run is safe to repeat. Schedules come from app settings (see
`shared.schedules.DEFAULTS` for the names and defaults), read when the app is indexed."""

from __future__ import annotations

import logging
import os

import azure.functions as func

from shared.schedules import timer_schedule

from . import core

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.schedule(arg_name="timer", schedule="0 */5 * * * *", run_on_startup=False, use_monitor=True)
def requeue_stalled_operations(timer: func.TimerRequest) -> None:
    """Operations recorded but never started (their message was lost) are queued again."""
    count = core.bootstrap.container().intake.requeue_stalled()
    log.log(logging.WARNING if count else logging.INFO, "stall sweep: %d operation(s) queued again", count)


@bp.schedule(arg_name="timer", schedule=timer_schedule(os.environ, "RECONCILE_SCHEDULE"),
             run_on_startup=False, use_monitor=True)
def reconcile_attachments(timer: func.TimerRequest) -> None:
    """Queue this occurrence's reconcile run: a check per VM due (each its own operation), then
    VMs whose event was missed and other ways in; the run's operation reports it all."""
    operation = core.bootstrap.container().reconcile.start()
    log.info("reconcile: run %s queued", operation.id)


@bp.schedule(arg_name="timer", schedule=timer_schedule(os.environ, "COST_REFRESH_SCHEDULE"),
             run_on_startup=False, use_monitor=True)
def refresh_costs(timer: func.TimerRequest) -> None:
    """Refresh the prices in use and deliver any digest whose post has not succeeded yet."""
    app = core.bootstrap.container()
    try:
        app.costs.refresh_prices()
    finally:  # a price or VM listing failure must not hold back a pending digest
        app.digests.deliver_pending()


@bp.schedule(arg_name="timer", schedule=timer_schedule(os.environ, "COST_DIGEST_SCHEDULE"),
             run_on_startup=False, use_monitor=True)
def send_cost_digest(timer: func.TimerRequest) -> None:
    """Build today's cost digest (once a day, however often it runs) and post it once."""
    core.bootstrap.container().digests.run()


@bp.schedule(arg_name="timer", schedule=timer_schedule(os.environ, "SNAPSHOT_SCHEDULE"),
             run_on_startup=False, use_monitor=True)
def snapshot_shares(timer: func.TimerRequest) -> None:
    """Today's snapshot of every share; the service's own past SNAPSHOT_RETENTION_DAYS removed."""
    report = core.bootstrap.container().data_protection.run_daily()
    log.log(logging.ERROR if report["errors"] else logging.INFO, "snapshots: %d taken, %d removed, %d failed",
            len(report["taken"]), len(report["removed"]), len(report["errors"]))


@bp.schedule(arg_name="timer", schedule=timer_schedule(os.environ, "PURGE_SCHEDULE"),
             run_on_startup=False, use_monitor=True)
def purge_deleted_storage(timer: func.TimerRequest) -> None:
    """Deleted storage whose DELETE_RETENTION_DAYS are over is deleted for good (an operation each)."""
    queued = core.bootstrap.container().data_protection.purge_due()
    log.info("purge: %d deleted storage(s) past their window queued", len(queued))


@bp.schedule(arg_name="timer", schedule=timer_schedule(os.environ, "RETENTION_SCHEDULE"),
             run_on_startup=False, use_monitor=True)
def remove_old_records(timer: func.TimerRequest) -> None:
    """Ended operations, idempotency keys, handled events and digests past RETENTION_DAYS go."""
    core.bootstrap.container().retention.run()
