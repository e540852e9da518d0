"""A token bucket: how many calls of one kind may go to Resource Manager now, shared by every
instance of the app (the state lives in Table Storage: shared/adapters/tables.py).

`capacity` calls may go at once; the bucket refills at `per_second`. A 429's Retry-After empties
it until then (`hold_off`), so every instance slows down, not only the one that was told."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Bucket:
    capacity: float
    per_second: float


@dataclass(frozen=True)
class BucketState:
    tokens: float
    updated_at: datetime
    blocked_until: datetime | None = None

    @classmethod
    def full(cls, bucket: Bucket, now: datetime) -> BucketState:
        return cls(bucket.capacity, now)

    def take(self, bucket: Bucket, now: datetime) -> tuple[BucketState, float]:
        """The state after taking one token, and 0; or this state and the seconds to wait."""
        if self.blocked_until is not None and now < self.blocked_until:
            return self, (self.blocked_until - now).total_seconds()
        elapsed = max(0.0, (now - self.updated_at).total_seconds())
        tokens = min(bucket.capacity, self.tokens + elapsed * bucket.per_second)
        if tokens >= 1:
            return BucketState(tokens - 1, now), 0.0
        return self, (1 - tokens) / bucket.per_second

    def hold_off(self, now: datetime, seconds: float) -> BucketState:
        until = now + timedelta(seconds=seconds)
        later = until if self.blocked_until is None or until > self.blocked_until else self.blocked_until
        return BucketState(0.0, until, later)
