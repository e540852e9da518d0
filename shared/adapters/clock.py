"""The real clock. Services take a Clock so tests can move time (lease expiry) without sleeping."""

from __future__ import annotations

from datetime import UTC, datetime


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)
