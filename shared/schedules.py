"""Timer schedules from app settings (NCRONTAB, six fields, UTC), read when the functions are
indexed. Standard library only: indexing happens on every cold start."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from shared.domain.ncrontab import Schedule

DEFAULTS = {
    "RECONCILE_SCHEDULE": "0 */15 * * * *",  # every 15 minutes
    "COST_REFRESH_SCHEDULE": "0 5 * * * *",  # hourly, at minute 5
    "COST_DIGEST_SCHEDULE": "0 0 7 * * *",  # daily at 07:00 UTC
    "SNAPSHOT_SCHEDULE": "0 0 2 * * *",  # daily at 02:00 UTC
    "PURGE_SCHEDULE": "0 35 * * * *",  # hourly, at minute 35
    "RETENTION_SCHEDULE": "0 20 3 * * *",  # daily at 03:20 UTC
}


def timer_schedule(env: Mapping[str, str], name: str) -> str:
    """The schedule an app setting gives a timer, else its default. A malformed value falls back
    to the default, logged: refusing it would take every function of the app down with it."""
    default = DEFAULTS[name]
    value = " ".join((env.get(name) or "").split())
    if not value:
        return default
    try:
        if len(value.split()) != 6:
            raise ValueError("it needs six fields: {second} {minute} {hour} {day} {month} {day-of-week}")
        Schedule.parse(value)  # the same reading as the timer's, so what passes here runs there
    except ValueError as err:
        logging.getLogger(__name__).error("%s=%r is not an NCRONTAB schedule (%s); using %r",
                                          name, value, err, default)
        return default
    return value
