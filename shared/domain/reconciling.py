"""Which attachments a reconcile run checks: each at most once per interval, spread over the runs.

The reconcile timer fires every `period` (RECONCILE_SCHEDULE); each VM's mount is verified about
once per `interval` (RECONCILE_INTERVAL). A run checks the attachments never verified, and those
whose last check is an interval old (less half a period, so a 60-minute interval on a 15-minute
timer does not slip to 75), oldest first, at most twice the even share of a run (and at least
MIN_PER_RUN): a fleet attached at one moment spreads itself over the runs within one interval, and
a backlog (after an outage) drains at twice the steady rate without putting the whole fleet into
one run."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta

from .models import Attachment

MIN_PER_RUN = 10  # a small fleet is checked whole: spreading ten VMs saves nothing


def due_for_check(attachments: Sequence[Attachment], now: datetime, interval: timedelta,
                  period: timedelta) -> list[Attachment]:
    if interval <= period:
        return list(attachments)
    never = [a for a in attachments if a.last_verified_at is None]
    old_enough = now - interval + period / 2
    checked = [a for a in attachments if a.last_verified_at is not None and a.last_verified_at <= old_enough]
    aged = sorted(checked, key=lambda a: (a.last_verified_at, a.resource_group, a.vm))
    share = max(MIN_PER_RUN, 2 * math.ceil(len(attachments) * (period / interval)))
    return never + aged[:share]
