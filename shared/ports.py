"""Ports: what the services need from the outside world, named by capability.

Adapters in `shared.adapters` implement them against Azure; services depend only on these.
Verbs follow the Azure SDK guidelines: `get` returns None for a missing record, `list` returns a
page (possibly empty), `delete`/`remove`/`release` succeed when the thing is already gone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from .domain.models import Attachment, StorageInfo
from .domain.operations import Operation

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    continuation: str | None  # opaque; pass back to get the next page, None when done


@dataclass(frozen=True)
class IdempotencyRecord:
    key: str
    fingerprint: str  # what the first request asked for; a different ask with the same key is refused
    operation_id: str
    created_at: datetime
    queued: bool = False  # a request with this key sends (or sent) the message; no other may
    etag: str | None = field(default=None, compare=False)  # stored version, for conditional updates


@dataclass(frozen=True)
class Lease:
    key: str
    owner: str  # unique per holder; only the holder can renew or release
    holder: str  # for people: which operation holds it
    expires_at: datetime
    etag: str


class Clock(Protocol):
    def now(self) -> datetime: ...


class OperationRepository(Protocol):
    def add(self, operation: Operation) -> Operation:
        """Record a new operation; if one with the same id exists, return that one unchanged."""

    def get(self, operation_id: str) -> Operation | None: ...

    def save(self, operation: Operation) -> Operation:
        """Replace the record, only if unchanged since it was read (raises ConcurrentUpdate)."""

    def list_stalled(self, updated_before: datetime) -> list[Operation]:
        """Pending operations never started and untouched since `updated_before`."""


class IdempotencyStore(Protocol):
    def claim(self, record: IdempotencyRecord, expired_before: datetime) -> IdempotencyRecord:
        """Store `record` unless the key is held by a record newer than `expired_before`; return
        whichever record holds the key afterwards."""

    def reserve_send(self, record: IdempotencyRecord) -> bool:
        """Mark the key's operation as queued, only if the record is unchanged since `record` was
        read: of concurrent requests with one key, exactly one gets True and sends the message."""

    def release_send(self, record: IdempotencyRecord) -> None:
        """Undo a reservation whose message could not be sent, so a replay sends it."""


class StorageRepository(Protocol):
    def get(self, name: str) -> StorageInfo | None: ...

    def list(self, resource_group: str | None, page_size: int,
             continuation: str | None) -> Page[StorageInfo]: ...

    def save(self, storage: StorageInfo) -> None: ...

    def delete(self, name: str) -> None: ...


class AttachmentRepository(Protocol):
    def get(self, resource_group: str, vm: str) -> Attachment | None: ...

    def list_for_storage(self, storage: str) -> list[Attachment]: ...

    def add(self, attachment: Attachment) -> Attachment:
        """Record an attachment; a VM attached to the same storage returns the existing record,
        one attached to another storage raises Conflict (VmAttachedElsewhere)."""

    def save(self, attachment: Attachment) -> None:
        """Update an existing attachment (health, verification)."""

    def remove(self, resource_group: str, vm: str) -> None: ...


class LockManager(Protocol):
    def acquire(self, key: str, owner: str, holder: str) -> Lease:
        """Take the lock, or take over an expired one; raises ResourceBusy while someone else
        holds it."""

    def renew(self, lease: Lease) -> Lease:
        """Extend a lease still held; raises LeaseLost (a TransientError) if it was taken over."""

    def release(self, lease: Lease) -> None: ...


class OperationQueue(Protocol):
    def send(self, operation_id: str, delay_seconds: int = 0) -> None: ...


class Probe(Protocol):
    """A dependency the readiness check can ask: does it answer?"""

    name: str

    def check(self) -> None: ...
