"""Timer schedules from app settings (NCRONTAB, six fields, UTC), read when the functions are
indexed. Standard library only: indexing happens on every cold start."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

DEFAULTS = {
    "RECONCILE_SCHEDULE": "0 */15 * * * *",  # every 15 minutes
    "COST_REFRESH_SCHEDULE": "0 5 * * * *",  # hourly, at minute 5
    "COST_DIGEST_SCHEDULE": "0 0 7 * * *",  # daily at 07:00 UTC
}
_FIELD = r"[0-9*/,\-A-Za-z]+"
_NCRONTAB = re.compile(rf"{_FIELD}( {_FIELD}){{5}}")


def timer_schedule(env: Mapping[str, str], name: str) -> str:
    """The schedule an app setting gives a timer, else its default. A malformed value falls back
    to the default, logged: refusing it would take every function of the app down with it."""
    default = DEFAULTS[name]
    value = " ".join((env.get(name) or "").split())
    if not value:
        return default
    if not _NCRONTAB.fullmatch(value):
        logging.getLogger(__name__).error(
            "%s=%r is not a six-field NCRONTAB schedule ({second} {minute} {hour} {day} {month} "
            "{day-of-week}); using %r", name, value, default)
        return default
    return value
