"""Records do not pile up: what is older than RETENTION_DAYS goes (ended operations, idempotency
keys, handled events, digests), a bounded batch per run of the daily timer, so a backlog drains
over a few runs instead of one run outliving its timeout. Storage records, attachments, access
lists and anything still running are never touched."""

from __future__ import annotations

import logging
from datetime import timedelta

from shared.ports import Clock, Retention

log = logging.getLogger(__name__)
BATCH = 5000  # records a run removes at most


class RetentionService:
    def __init__(self, retention: Retention, clock: Clock, days: int) -> None:
        self.retention = retention
        self.clock = clock
        self.days = days

    def run(self) -> dict[str, int]:
        before = self.clock.now() - timedelta(days=self.days)
        removed = self.retention.sweep(before, BATCH)
        log.info("retention: removed %s (made before %s)", removed or "nothing", f"{before:%Y-%m-%d}")
        return removed
