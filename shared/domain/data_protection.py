"""Keeping a team's homes recoverable: the rules, not the calls.

- A deleted storage is kept, locked and unreachable, for `DELETE_RETENTION_DAYS`; an undelete
  brings it back, the purge timer deletes it for good after the window.
- Share snapshots (read-only copies Azure keeps beside the share) are taken before every
  destructive step on a live share and once a day; the service removes its own after
  `SNAPSHOT_RETENTION_DAYS` and never touches one it did not take.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum

from .errors import Conflict, ErrorCode, ValidationError
from .models import StorageInfo, StorageState
from .serialization import OMIT_IF_NONE

# "The maximum number of share snapshots that Azure Files allows today is 200" (azure-docs
# articles/storage/files/storage-snapshots-files.md, Limits).
MAX_SNAPSHOTS = 200
# Share metadata names follow C# identifier rules (Snapshot Share, x-ms-meta-name): no dashes.
REASON_KEY = "azlinreason"
# Azure's snapshot time, which names a snapshot everywhere (`?sharesnapshot=`, `x-ms-snapshot`).
# Matched whole, and stated by the OpenAPI document, as validation's patterns are.
SNAPSHOT_ID = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,7})?Z"
_SNAPSHOT_ID = re.compile(SNAPSHOT_ID)
MAX_RESTORE_PATH = 1024  # characters
# A path inside the home, relative to it: not absolute, no '.' or '..' component, no control
# characters (the rules `restore_path` explains one by one).
RESTORE_PATH = r"(?!/)(?!(?:[^/]*/)*\.\.?(?:/|$))[^\x00-\x1f\x7f]" + f"{{1,{MAX_RESTORE_PATH}}}"


@dataclass(frozen=True)
class DataProtection:
    """How long what was deleted can be brought back (app settings)."""

    delete_retention_days: int = 7  # DELETE_RETENTION_DAYS; 0: a delete purges at once
    snapshot_retention_days: int = 7  # SNAPSHOT_RETENTION_DAYS: the service's own share snapshots

    @property
    def share_retention_days(self) -> int:
        """Share soft delete keeps a deleted share 1 to 365 days
        (azure-docs articles/storage/files/storage-files-prevent-file-share-deletion.md)."""
        return min(max(self.delete_retention_days, 1), 365)


class SnapshotReason(str, Enum):
    DAILY = "daily"
    BEFORE_DETACH = "beforeDetach"  # a detach that leaves the share's files behind (restore mode)
    BEFORE_SHRINK = "beforeShrink"
    ON_REQUEST = "onRequest"


@dataclass(frozen=True)
class ShareSnapshot:
    id: str  # its snapshot time as Azure writes it, e.g. 2026-12-03T02:00:00.0000000Z
    taken_at: datetime
    # Why the service took it; None: someone else did (the service never removes those).
    reason: SnapshotReason | None = field(default=None, metadata=OMIT_IF_NONE)
    expires_at: datetime | None = field(default=None, metadata=OMIT_IF_NONE)

    @property
    def ours(self) -> bool:
        return self.reason is not None


def purge_after(deleted_at: datetime, retention_days: int) -> datetime:
    return deleted_at + timedelta(days=retention_days)


def require_active(storage: StorageInfo, doing: str) -> None:
    """A deleted storage is kept only to be brought back: nothing else is done with it."""
    if storage.state is StorageState.DELETING:
        raise Conflict(f"Storage {storage.name} is being deleted: cannot {doing}.",
                       try_hint="wait for the delete to end; a failed one leaves it Active again",
                       code=ErrorCode.STORAGE_DELETED)
    if storage.deleted:
        when = f" until {storage.purge_after:%Y-%m-%d %H:%M} UTC" if storage.purge_after else ""
        raise Conflict(f"Storage {storage.name} is deleted (kept{when}): cannot {doing}.",
                       try_hint=f"undelete it first (POST /api/storage/{storage.name}/undelete)",
                       code=ErrorCode.STORAGE_DELETED)


def with_expiry(snapshot: ShareSnapshot, retention_days: int) -> ShareSnapshot:
    if not snapshot.ours:
        return snapshot
    return ShareSnapshot(snapshot.id, snapshot.taken_at, snapshot.reason,
                         snapshot.taken_at + timedelta(days=retention_days))


def expired(snapshots: Iterable[ShareSnapshot], now: datetime, retention_days: int) -> list[ShareSnapshot]:
    """The service's own snapshots older than the retention, oldest first."""
    return sorted((s for s in snapshots if s.ours and s.taken_at + timedelta(days=retention_days) <= now),
                  key=lambda s: s.taken_at)


def taken_today(snapshots: Iterable[ShareSnapshot], now: datetime) -> bool:
    """A daily snapshot exists for `now`'s UTC day (a timer that runs twice takes one)."""
    return any(s.reason is SnapshotReason.DAILY and s.taken_at.date() == now.date() for s in snapshots)


def require_room(storage: str, count: int) -> None:
    if count >= MAX_SNAPSHOTS:
        raise Conflict(f"The share of {storage} has {count} snapshots, Azure's most.",
                       causes=[f"Azure keeps at most {MAX_SNAPSHOTS} snapshots of a share"],
                       try_hint="delete snapshots that are no longer needed (ones this service did not "
                                "take are never removed by it), or lower SNAPSHOT_RETENTION_DAYS",
                       code=ErrorCode.SNAPSHOT_LIMIT)


def snapshot_directory(snapshot: str) -> str:
    """Its directory under the share's `.snapshots`, as the emulator names it. Azure does not
    document the NFS name: this is the `@GMT-` token Azure Files gives SMB clients
    (storage-snapshots-files.md); the restore script looks for the snapshot time too."""
    return "@GMT-" + snapshot[:19].replace("-", ".").replace("T", "-").replace(":", ".")


def snapshot_stamp(snapshot: str) -> str:
    """A compact form for file names: 20261203T020000Z."""
    return snapshot[:19].replace("-", "").replace(":", "") + "Z"


def snapshot_id(value: object, field_name: str = "snapshot") -> str:
    if not isinstance(value, str) or not _SNAPSHOT_ID.fullmatch(value):
        raise ValidationError(f"'{field_name}' must be a snapshot's id, as GET /api/storage/<name>/snapshots "
                              "lists them (e.g. 2026-12-03T02:00:00.0000000Z).")
    return value


def restore_path(value: object, field_name: str = "path") -> str:
    """A path inside the home, relative to it: what a restore puts back. `..`, absolute paths,
    NUL and control characters are refused, so the script is never asked to leave the home."""
    if not isinstance(value, str) or not value.strip("/"):
        raise ValidationError(f"'{field_name}' must name a file or directory inside the home, "
                              "relative to it (e.g. projects/report.txt).")
    if len(value) > MAX_RESTORE_PATH or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValidationError(f"'{field_name}' must be at most {MAX_RESTORE_PATH} characters, without "
                              "control characters.")
    if value.startswith("/"):
        raise ValidationError(f"'{field_name}' must be relative to the home, not absolute.",
                              try_hint=f"use {value.lstrip('/')!r}")
    parts = [part for part in value.split("/") if part]
    if any(part in (".", "..") for part in parts):
        raise ValidationError(f"'{field_name}' must not contain '.' or '..' components.")
    return "/".join(parts)
